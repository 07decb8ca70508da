use super::*;

#[test]
fn rejects_bad_configs() {
    let check = |config: LogConfig| assert!(config.validate().is_err());
    check(LogConfig {
        channel_capacity: 0,
        ..LogConfig::default()
    });
    check(LogConfig {
        batch_size: 0,
        ..LogConfig::default()
    });
    check(LogConfig {
        flush_interval: Duration::ZERO,
        ..LogConfig::default()
    });
    assert!(LogConfig::default().validate().is_ok());
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LogDatabase>();
    check::<LogLayer>();
    check::<LogStats>();
}
