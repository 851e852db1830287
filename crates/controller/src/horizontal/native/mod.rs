//! Native `autoscaling/v2` HorizontalPodAutoscaler objects (`--native-hpa`).

pub mod status;
