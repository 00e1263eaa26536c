use super::*;

#[test]
fn depends_on_names_a_resource() {
    let t = "Resources:\n  A: {Type: AWS::EC2::VPC, DependsOn: [B, Nope]}\n  B: {Type: AWS::EC2::VPC}\n";
    let e = inst(t, &[]).unwrap_err();
    assert_eq!(e.path, "Resources.A.DependsOn[1]");
    assert_eq!(
        e.message,
        "Template format error: Unresolved resource dependencies [Nope] in the Resources block of the template"
    );
    inst(&t.replace(", Nope", ""), &[]).unwrap();
}

#[test]
fn cycles_are_refused() {
    for t in [
        // DependsOn both ways.
        "Resources:\n  A: {Type: AWS::EC2::VPC, DependsOn: B}\n  B: {Type: AWS::EC2::VPC, DependsOn: A}\n",
        // Ref one way, GetAtt the other.
        "Resources:\n  A: {Type: AWS::EC2::VPC, Properties: {X: !Ref B}}\n  B: {Type: AWS::EC2::VPC, Properties: {Y: !GetAtt A.CidrBlock}}\n",
        // Through Fn::Sub, and a third resource.
        "Resources:\n  A: {Type: AWS::EC2::VPC, Properties: {X: !Sub '${B.Id}'}}\n  B: {Type: AWS::EC2::VPC, DependsOn: C}\n  C: {Type: AWS::EC2::VPC, Properties: {Z: !Sub ['${x}', {x: !Ref A}]}}\n",
    ] {
        let e = inst(t, &[]).unwrap_err();
        assert_eq!(e.path, "Resources", "{t}");
        assert!(
            e.message.starts_with("Circular dependency between resources: [A, B"),
            "{t}: {e}"
        );
    }
    let e = inst(
        "Resources:\n  A: {Type: AWS::EC2::VPC, Properties: {X: !Ref A}}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.message, "Circular dependency between resources: [A]");
    // Sub variables and parameters are not resources.
    inst(
        "Parameters:\n  P: {Type: String, Default: x}\nResources:\n  A: {Type: AWS::EC2::VPC, Properties: {X: !Sub ['${B}-${P}-${AWS::Region}', {B: b}]}}\n  B: {Type: AWS::EC2::VPC, Properties: {Y: !Ref A}}\n",
        &[],
    )
    .unwrap();
}
