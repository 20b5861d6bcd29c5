//! Deploy Action pure logic: cloud assembly manifests, change-set reports.
