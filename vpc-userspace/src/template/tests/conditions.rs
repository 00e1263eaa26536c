use serde_json::json;

use super::*;

const HEAD: &str = "Parameters:
  Env: {Type: String, Default: prod, AllowedValues: [prod, dev]}
  Count: {Type: Number, Default: 3}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [!Condition IsProd]
  Three: !Equals [!Ref Count, 3]
  ProdAndThree: !And [!Condition IsProd, !Condition Three]
  DevOrThree: !Or [!Condition IsDev, !Equals [!Ref AWS::Region, eu-west-1]]
  InUsEast1: !Equals [us-east-1, !Select [0, !Split [',', !Join [',', [!Ref AWS::Region, x]]]]]
";

#[test]
fn condition_functions() {
    let text = one(HEAD, "      A: 1\n");
    let (_, env) = inst(&text, &[]).unwrap();
    let c = &env.conditions;
    assert!(c["IsProd"] && !c["IsDev"] && c["Three"] && c["ProdAndThree"]);
    assert!(!c["DevOrThree"] && c["InUsEast1"]);
    let (_, env) = inst(&text, &[("Env", "dev"), ("Count", "4")]).unwrap();
    let c = &env.conditions;
    assert!(!c["IsProd"] && c["IsDev"] && !c["Three"] && !c["ProdAndThree"] && c["DevOrThree"]);
}

#[test]
fn a_false_condition_removes_the_resource_and_output() {
    let text = format!(
        "{HEAD}Resources:
  Always: {{Type: AWS::EC2::VPC}}
  OnlyDev: {{Type: AWS::EC2::VPC, Condition: IsDev}}
Outputs:
  A: {{Value: x}}
  B: {{Value: !Ref OnlyDev, Condition: IsDev}}
"
    );
    let (t, env) = inst(&text, &[]).unwrap();
    assert!(t.resources.contains_key("Always") && !t.resources.contains_key("OnlyDev"));
    assert!(env.removed.contains("OnlyDev"));
    assert_eq!(t.outputs.keys().collect::<Vec<_>>(), ["A"]);
    let (t, _) = inst(&text, &[("Env", "dev")]).unwrap();
    assert!(t.resources.contains_key("OnlyDev"));
    assert_eq!(t.outputs.len(), 2);
}

#[test]
fn a_reference_to_a_removed_resource_is_unresolved() {
    let text = format!(
        "{HEAD}Resources:
  OnlyDev: {{Type: AWS::EC2::VPC, Condition: IsDev}}
  User:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref OnlyDev
"
    );
    let e = inst(&text, &[]).unwrap_err();
    assert_eq!(e.path, "Resources.User.Properties.VpcId");
    assert_eq!(
        e.message,
        "Template format error: Unresolved resource dependencies [OnlyDev] in the Resources block of the template"
    );
    assert!(inst(&text, &[("Env", "dev")]).is_ok());
    // Through Fn::If's untaken branch: fine; DependsOn: not.
    let guarded = text.replace(
        "VpcId: !Ref OnlyDev",
        "VpcId: !If [IsDev, !Ref OnlyDev, !Ref AWS::NoValue]",
    );
    let (t, _) = inst(&guarded, &[]).unwrap();
    assert!(t.resources["User"].properties.get("VpcId").is_none());
    let dep = text.replace(
        "    Properties:\n      VpcId: !Ref OnlyDev\n",
        "    DependsOn: OnlyDev\n",
    );
    let e = inst(&dep, &[]).unwrap_err();
    assert_eq!(e.path, "Resources.User.DependsOn[0]");
    assert!(e.message.contains("[OnlyDev]"), "{e}");
    // From an output.
    let out = format!("{HEAD}Resources:\n  OnlyDev: {{Type: AWS::EC2::VPC, Condition: IsDev}}\n  W: {{Type: AWS::EC2::VPC}}\nOutputs:\n  O: {{Value: !GetAtt OnlyDev.CidrBlock}}\n");
    let e = inst(&out, &[]).unwrap_err();
    assert_eq!(e.path, "Outputs.O.Value");
    assert!(e.message.contains("in the Outputs block"), "{e}");
}

#[test]
fn fn_if_chooses_a_branch_and_no_value_removes() {
    let text = one(
        HEAD,
        "      A: !If [IsProd, big, small]\n      B: [x, !If [IsDev, y, !Ref AWS::NoValue], z]\n      C: !If [IsDev, gone, !Ref AWS::NoValue]\n      D: {Nested: !If [ProdAndThree, !If [IsDev, no, yes], no]}\n",
    );
    let v = props_of(&text, &[], "V").unwrap();
    assert_eq!(v["A"], "big");
    assert_eq!(v["B"], json!(["x", "z"]));
    assert!(v.get("C").is_none());
    assert_eq!(v["D"]["Nested"], "yes");
    let v = props_of(&text, &[("Env", "dev")], "V").unwrap();
    assert_eq!(v["A"], "small");
    assert_eq!(v["B"], json!(["x", "y", "z"]));
    assert_eq!(v["C"], "gone");
}

#[test]
fn condition_errors() {
    let e = inst(&one(HEAD, "      A: !If [Nope, a, b]\n"), &[]).unwrap_err();
    assert_eq!(e.path, "Resources.V.Properties.A");
    assert!(
        e.message
            .contains("Unresolved condition dependency Nope in Fn::If"),
        "{e}"
    );
    let e = inst(
        "Resources:\n  V: {Type: AWS::EC2::VPC, Condition: Nope}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.path, "Resources.V.Condition");
    let e = inst(
        "Conditions:\n  A: !Condition B\n  B: !Not [!Condition A]\nResources:\n  V: {Type: AWS::EC2::VPC}\n",
        &[],
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("Circular dependency between conditions: [A, B]"),
        "{e}"
    );
    let e = inst(
        "Conditions:\n  A: !Equals [!Ref V, x]\nResources:\n  V: {Type: AWS::EC2::VPC}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.path, "Conditions.A.Fn::Equals[0]");
    assert!(
        e.message
            .contains("Cannot reference resources in the Conditions block"),
        "{e}"
    );
    let e = inst(
        "Conditions:\n  A: !And [!Equals [a, a]]\nResources:\n  V: {Type: AWS::EC2::VPC}\n",
        &[],
    )
    .unwrap_err();
    assert!(
        e.message.contains("Fn::And requires a list of 2 to 10"),
        "{e}"
    );
}
