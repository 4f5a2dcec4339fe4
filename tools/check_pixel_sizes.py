"""Print the pixel size rosettasciio reads for each TIFF in a folder, in nm.

Checks the reference values of tests/particles.rs: write the test TIFFs with
`MORPHOSEARCH_WRITE_TIFFS=DIR cargo test --release --test particles pixel_size`, then
`python tools/check_pixel_sizes.py DIR` (needs `pip install rosettasciio`).
"""

import sys
from pathlib import Path

from rsciio.tiff import file_reader

NM_PER = {"m": 1e9, "mm": 1e6, "µm": 1e3, "um": 1e3, "micron": 1e3, "nm": 1.0, "pm": 1e-3}

for path in sorted(Path(sys.argv[1]).glob("*.tif")):
    try:
        axes = file_reader(str(path))[0]["axes"]
        x = next(a for a in axes if a.get("name") in ("x", "width"))
        unit = str(x.get("units"))
        nm = x["scale"] * NM_PER[unit] if unit in NM_PER else None
        print(f"{path.name}: scale {x['scale']} {unit} -> {nm} nm")
    except Exception as e:  # report and go on: one unreadable file says nothing of the others
        print(f"{path.name}: {type(e).__name__}: {e}")
