//! The enumerated options of the command line as clap value enums: `--help` lists the choices,
//! a wrong value is refused by clap with the list, and the engine gets its own types.

use clap::ValueEnum;

use crate::engine::descriptor::pooling::Pooling;
use crate::engine::particles::segment::Polarity;
use crate::engine::particles::Shape;

/// How a conv map becomes a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolingArg {
    /// Generalised mean, p = 3.
    Gem,
    /// Global max (MAC).
    Max,
    /// Global average (SPoC).
    Avg,
    /// Regional max over 3 scales.
    Rmac,
    /// fc2 after ReLU (needs timm's full VGG16 weights).
    Fc2,
    /// Max and GeM side by side.
    Maxgem,
}

impl From<PoolingArg> for Pooling {
    fn from(p: PoolingArg) -> Self {
        match p {
            PoolingArg::Gem => Pooling::Gem,
            PoolingArg::Max => Pooling::Max,
            PoolingArg::Avg => Pooling::Avg,
            PoolingArg::Rmac => Pooling::Rmac,
            PoolingArg::Fc2 => Pooling::Fc2,
            PoolingArg::Maxgem => Pooling::MaxGem,
        }
    }
}

/// Where the network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// CUDA when built with the `cuda` feature and a GPU is present, else the CPU.
    Auto,
    Cpu,
    Cuda,
}

impl DeviceArg {
    pub fn name(self) -> &'static str {
        match self {
            DeviceArg::Auto => "auto",
            DeviceArg::Cpu => "cpu",
            DeviceArg::Cuda => "cuda",
        }
    }
}

/// Which particles to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolarityArg {
    /// The class covering most of the image border is the background.
    Auto,
    /// Bright particles on a dark background (SEM).
    Bright,
    /// Dark particles on a bright background (TEM).
    Dark,
}

impl From<PolarityArg> for Polarity {
    fn from(p: PolarityArg) -> Self {
        match p {
            PolarityArg::Auto => Polarity::Auto,
            PolarityArg::Bright => Polarity::Bright,
            PolarityArg::Dark => Polarity::Dark,
        }
    }
}

/// A particle shape class (plurals accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShapeArg {
    #[value(alias = "spheres")]
    Sphere,
    #[value(alias = "cubes")]
    Cube,
    #[value(alias = "rods")]
    Rod,
    Elongated,
    Irregular,
}

impl From<ShapeArg> for Shape {
    fn from(s: ShapeArg) -> Self {
        match s {
            ShapeArg::Sphere => Shape::Sphere,
            ShapeArg::Cube => Shape::Cube,
            ShapeArg::Rod => Shape::Rod,
            ShapeArg::Elongated => Shape::Elongated,
            ShapeArg::Irregular => Shape::Irregular,
        }
    }
}
