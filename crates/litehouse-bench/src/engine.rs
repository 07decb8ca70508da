pub(crate) fn workloads() -> Vec<crate::Workload> { Vec::new() }
