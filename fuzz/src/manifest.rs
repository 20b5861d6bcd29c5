//! CDK cloud assemblies: `manifest.json` and asset-manifest parsing never panic; stacks come in
//! dependency order, each once; selecting nothing selects every stack, selecting a stack by id
//! returns it; no file asset's path leaves the assembly directory.
//!
//! Input: one JSON document, read as `manifest.json`, as `<Stack>.assets.json` and as a stack
//! template (bootstrap parameter, Lambda code keys).

use ssm_core::deploy::assembly::{
    AssemblyError, CloudAssembly, Placeholders, bootstrap_parameter, lambda_code_keys, parse_assets,
};

pub(crate) fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(assembly) = CloudAssembly::parse(text) {
        check_assembly(&assembly);
    }
    if let Ok(assets) = parse_assets("Fuzz.assets.json", text) {
        for asset in &assets {
            assert!(
                !asset.path.starts_with('/') && !asset.path.split(['/', '\\']).any(|c| c == ".."),
                "asset path {:?} leaves the assembly",
                asset.path
            );
        }
    }
    if let Ok(template) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = bootstrap_parameter(&template);
        let _ = lambda_code_keys(&template);
    }
    let placeholders = Placeholders::new("111122223333", "us-east-1");
    let _ = placeholders.fill(text);
    let _ = placeholders.template_url(text);
}

fn check_assembly(assembly: &CloudAssembly) {
    let stacks = &assembly.stacks;
    for (i, stack) in stacks.iter().enumerate() {
        assert!(
            stacks[..i].iter().all(|s| s.id != stack.id),
            "stack {} listed twice",
            stack.id
        );
        for dep in &stack.depends_on {
            assert!(
                stacks[..i].iter().any(|s| &s.id == dep),
                "{} comes before its dependency {dep}",
                stack.id
            );
        }
    }
    match assembly.select(&[]) {
        Ok(all) => assert!(all.iter().copied().eq(stacks.iter())),
        Err(error) => {
            assert!(stacks.is_empty());
            assert_eq!(error, AssemblyError::NoStacks);
        }
    }
    for stack in stacks {
        let selected = assembly
            .select(std::slice::from_ref(&stack.id))
            .expect("a stack selects by its id");
        assert!(selected.iter().any(|s| s.id == stack.id));
    }
}
