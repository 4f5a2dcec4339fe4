//! The network: VGG16 on candle with weight loading and checks, the ONNX weight import, and the
//! fast CPU convolution (Winograd F(2x2) and F(4x4) on an AVX-512 / portable matrix kernel).

pub mod gemm512;
pub mod onnx;
pub mod tiles;
pub mod vgg;
pub mod weights;
pub mod winograd;
pub mod winograd4;
