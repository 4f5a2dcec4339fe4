//! Descriptors: prepared images -> pooled conv features -> the projection fitted on the
//! database (PCA, optional whitening) -> unit vectors compared by cosine.

pub mod features;
pub mod pca;
pub mod pooling;
