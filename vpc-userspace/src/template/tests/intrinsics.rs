use serde_json::json;

use super::*;

#[test]
fn short_tags_become_long_forms() {
    let t = "Parameters:\n  Cidr: {Type: String, Default: 10.0.0.0/16}\nResources:\n  V:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: !Ref Cidr\n      Tags: [{Key: n, Value: !Sub '${AWS::StackName}-${Cidr}'}]\n      Az: !Select [1, !GetAZs '']\n      G: !GetAtt W.CidrBlock\n  W: {Type: AWS::EC2::VPC}\n";
    let (t, env) = inst(t, &[]).unwrap();
    let mut r = Resolver::new(&t, env);
    r.attrs
        .insert(("W".into(), "CidrBlock".into()), "10.0.0.0/16".into());
    let props = Value::Object(t.resources["V"].properties.clone());
    let v = r.resolve(&props, "Resources.V.Properties").unwrap();
    assert_eq!(v["CidrBlock"], "10.0.0.0/16");
    assert_eq!(v["Tags"][0]["Value"], "stack-10.0.0.0/16");
    assert_eq!(v["Az"], "us-east-1b");
    assert_eq!(v["G"], "10.0.0.0/16");
}

#[test]
fn json_long_forms() {
    let t = r#"{"Resources":{"V":{"Type":"AWS::EC2::VPC","Properties":{"A":{"Fn::Join":["-",["a",{"Ref":"AWS::Region"}]]},"B":{"Fn::Sub":["${X}!${!Y}",{"X":"x"}]}}}}}"#;
    let v = props_of(t, &[], "V").unwrap();
    assert_eq!(v["A"], "a-us-east-1");
    assert_eq!(v["B"], "x!${Y}");
}

#[test]
fn errors_name_the_place() {
    let e = err_of(&one("", "      CidrBlock: !Ref Nope\n"), &[]);
    assert_eq!(e.path, "Resources.V.Properties.CidrBlock");
    assert!(
        e.message
            .contains("Unresolved resource dependencies [Nope] in the Resources block"),
        "{e}"
    );
    let e = inst(
        "Parameters:\n  P: {Type: String}\nResources:\n  V: {Type: AWS::EC2::VPC}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.path, "Parameters.P");
    assert!(
        e.message.contains("Parameters: [P] must have values"),
        "{e}"
    );
    assert!(parse("Resources: {}").is_err());
    assert!(parse("- a\n- b").is_err());
    let e = parse("Resources:\n  V: {Type: AWS::EC2::VPC}\nOops: 1\n").unwrap_err();
    assert!(
        e.message
            .contains("Invalid template property or properties [Oops]"),
        "{e}"
    );
    let e = parse("Resources:\n  V: {Type: AWS::EC2::VPC, Propertis: {}}\n").unwrap_err();
    assert_eq!(e.path, "Resources.V.Propertis");
    let e = parse("Resources:\n  V-1: {Type: AWS::EC2::VPC}\n").unwrap_err();
    assert!(e.message.contains("non alphanumeric"), "{e}");
}

#[test]
fn unknown_and_misplaced_functions_are_errors() {
    let e = err_of(&one("", "      A: {Fn::Nope: [a]}\n"), &[]);
    assert_eq!(e.path, "Resources.V.Properties.A");
    assert!(
        e.message
            .contains("Encountered unsupported function: Fn::Nope"),
        "{e}"
    );
    let e = err_of(&one("", "      A: !Equals [a, a]\n"), &[]);
    assert!(e.message.contains("condition function"), "{e}");
    // An IAM policy's Condition is data.
    let v = props_of(
        &one("", "      Statement: [{Effect: Allow, Condition: {StringEquals: {a: !Ref AWS::Region}}}]\n"),
        &[],
        "V",
    )
    .unwrap();
    assert_eq!(
        v["Statement"][0]["Condition"]["StringEquals"]["a"],
        "us-east-1"
    );
}

#[test]
fn split_join_select_base64() {
    let v = props_of(
        &one(
            "Parameters:\n  Csv: {Type: String, Default: 'a,b,c'}\n",
            "      A: !Split [',', !Ref Csv]\n      B: !Join ['-', !Split [',', !Ref Csv]]\n      C: !Select [2, !Split [',', !Ref Csv]]\n      D: !Base64 hello\n      E: !Base64 {Fn::Sub: '${AWS::Region}'}\n      F: !Select ['1', [x, y]]\n      G: !Join ['', [a, 1, true]]\n",
        ),
        &[],
        "V",
    )
    .unwrap();
    assert_eq!(v["A"], json!(["a", "b", "c"]));
    assert_eq!(v["B"], "a-b-c");
    assert_eq!(v["C"], "c");
    assert_eq!(v["D"], "aGVsbG8=");
    assert_eq!(v["E"], "dXMtZWFzdC0x");
    assert_eq!(v["F"], "y");
    assert_eq!(v["G"], "a1true");
    let e = err_of(&one("", "      A: !Select [3, [a, b]]\n"), &[]);
    assert!(
        e.message
            .contains("Fn::Select cannot select nonexistent value at index 3"),
        "{e}"
    );
    let e = err_of(&one("", "      A: !Join ['', [a, [b]]]\n"), &[]);
    assert!(
        e.message
            .contains("every Fn::Join object requires two parameters"),
        "{e}"
    );
    let e = err_of(&one("", "      A: !Split [',', [a]]\n"), &[]);
    assert!(e.message.contains("Fn::Split"), "{e}");
}

#[test]
fn find_in_map() {
    let head = "Mappings:\n  Sizes:\n    us-east-1: {Cidr: 10.1.0.0/16, Azs: [a, b]}\n    eu-west-1: {Cidr: 10.2.0.0/16}\n";
    let v = props_of(
        &one(head, "      A: !FindInMap [Sizes, !Ref AWS::Region, Cidr]\n      B: !FindInMap [Sizes, us-east-1, Azs]\n"),
        &[],
        "V",
    )
    .unwrap();
    assert_eq!(v["A"], "10.1.0.0/16");
    assert_eq!(v["B"], json!(["a", "b"]));
    let e = err_of(
        &one(head, "      A: !FindInMap [Sizes, eu-west-1, Azs]\n"),
        &[],
    );
    assert!(
        e.message
            .contains("Unable to get mapping for Sizes::eu-west-1::Azs"),
        "{e}"
    );
    // DefaultValue: AWS::LanguageExtensions only.
    let dv = "      A: !FindInMap [Sizes, eu-west-1, Azs, {DefaultValue: [z]}]\n";
    let e = err_of(&one(head, dv), &[]);
    assert!(e.message.contains("AWS::LanguageExtensions"), "{e}");
    let v = props_of(
        &one(&format!("Transform: AWS::LanguageExtensions\n{head}"), dv),
        &[],
        "V",
    )
    .unwrap();
    assert_eq!(v["A"], json!(["z"]));
}

#[test]
fn length_and_to_json_string_need_language_extensions() {
    let props =
        "      A: !Length [a, b, c]\n      B: !ToJsonString {k: !Ref AWS::Region, l: [1, 2]}\n";
    let e = err_of(&one("", props), &[]);
    assert!(
        e.message
            .contains("Encountered unsupported function: Fn::Length"),
        "{e}"
    );
    let v = props_of(
        &one("Transform: [AWS::LanguageExtensions]\n", props),
        &[],
        "V",
    )
    .unwrap();
    assert_eq!(v["A"], 3);
    assert_eq!(v["B"], r#"{"k":"us-east-1","l":[1,2]}"#);
    let e =
        parse("Transform: AWS::Serverless-2016-10-31\nResources:\n  V: {Type: AWS::EC2::VPC}\n")
            .unwrap_err();
    assert_eq!(e.path, "Transform");
    assert!(e.message.contains("template::sam::expand"), "{e}");
}

#[test]
fn sub_both_forms() {
    let t = one(
        "Parameters:\n  Env: {Type: String, Default: prod}\n",
        "      A: !Sub '${AWS::StackName}-${Env}-${W}-${W.CidrBlock}-${!Literal}-${AWS::AccountId}'\n      B: !Sub ['${Name}.${AWS::Region}.${Env}', {Name: !Join ['-', [x, y]]}]\n      C: !Sub 'no ${ closing'\n",
    );
    let (t, env) = inst(&t, &[]).unwrap();
    let mut r = Resolver::new(&t, env);
    r.attrs
        .insert(("W".into(), "CidrBlock".into()), "10.0.0.0/16".into());
    let v = r
        .resolve(&Value::Object(t.resources["V"].properties.clone()), "p")
        .unwrap();
    assert_eq!(v["A"], "stack-prod-W-10.0.0.0/16-${Literal}-123456789012");
    assert_eq!(v["B"], "x-y.us-east-1.prod");
    assert_eq!(v["C"], "no ${ closing");
    let e = r
        .resolve(&json!({"Fn::Sub": "${W.Nope}"}), "Resources.V.Properties.X")
        .unwrap_err();
    assert!(
        e.message.contains("does not support attribute type Nope"),
        "{e}"
    );
}

#[test]
fn pseudo_parameters() {
    let v = props_of(
        &one("", "      A: !Ref AWS::AccountId\n      B: !Ref AWS::Region\n      C: !Ref AWS::StackName\n      D: !Ref AWS::StackId\n      E: !Ref AWS::Partition\n      F: !Ref AWS::URLSuffix\n      G: !Ref AWS::NotificationARNs\n      H: !GetAZs us-west-2\n"),
        &[],
        "V",
    )
    .unwrap();
    assert_eq!(v["A"], "123456789012");
    assert_eq!(v["B"], "us-east-1");
    assert_eq!(v["C"], "stack");
    let id = v["D"].as_str().unwrap();
    assert!(
        id.starts_with("arn:aws:cloudformation:us-east-1:123456789012:stack/stack/"),
        "{id}"
    );
    assert_eq!(id.rsplit('/').next().unwrap().len(), 36, "a UUID: {id}");
    assert_eq!(v["E"], "aws");
    assert_eq!(v["F"], "amazonaws.com");
    assert_eq!(v["G"], json!([]));
    assert_eq!(v["H"], json!(["us-west-2a", "us-west-2b", "us-west-2c"]));
}

#[test]
fn import_value_reads_other_stacks_exports() {
    let t = one(
        "",
        "      A: !ImportValue {Fn::Sub: 'shared-${AWS::Region}-vpc'}\n",
    );
    let e = err_of(&t, &[]);
    assert!(
        e.message
            .contains("No export named shared-us-east-1-vpc found"),
        "{e}"
    );
    let mut ctx = Context::new("stack");
    ctx.exports.insert(
        "shared-us-east-1-vpc".into(),
        Export {
            name: "shared-us-east-1-vpc".into(),
            value: "10.9.0.0/16".into(),
            stack: "other".into(),
        },
    );
    let (t, env) = inst_in(&t, &[], ctx).unwrap();
    let r = Resolver::new(&t, env);
    let v = r
        .resolve(&Value::Object(t.resources["V"].properties.clone()), "p")
        .unwrap();
    assert_eq!(v["A"], "10.9.0.0/16");
    assert!(r.imports.borrow().contains("shared-us-east-1-vpc"));
}

#[test]
fn get_att_attribute_may_be_a_ref() {
    let t = one(
        "Parameters:\n  Att: {Type: String, Default: CidrBlock}\n",
        "      A: {Fn::GetAtt: [W, !Ref Att]}\n",
    );
    let (t, env) = inst(&t, &[]).unwrap();
    let mut r = Resolver::new(&t, env);
    r.attrs
        .insert(("W".into(), "CidrBlock".into()), "10.0.0.0/16".into());
    let v = r
        .resolve(&Value::Object(t.resources["V"].properties.clone()), "p")
        .unwrap();
    assert_eq!(v["A"], "10.0.0.0/16");
}

#[test]
fn fn_cidr_splits_a_block_as_cloudformation_does() {
    let v = props_of(
        &one("", "      A: !Cidr [10.0.0.0/16, 3, 8]\n      B: !Select [1, !Cidr ['2001:db8:ec2:100::/56', 256, 64]]\n      C: !Select [255, !Cidr ['2001:db8:ec2:100::/56', 256, 64]]\n      D: !Cidr ['10.0.0.0/24', '2', '4']\n"),
        &[],
        "V",
    )
    .unwrap();
    assert_eq!(v["A"], json!(["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]));
    assert_eq!(v["B"], "2001:db8:ec2:101::/64");
    assert_eq!(v["C"], "2001:db8:ec2:1ff::/64");
    assert_eq!(v["D"], json!(["10.0.0.0/28", "10.0.0.16/28"]));
    for (bad, want) in [
        ("!Cidr ['2001:db8::/56', 257, 64]", "count 257"),
        ("!Cidr ['2001:db8::/56', 512, 72]", "count 512"),
        ("!Cidr ['2001:db8::/56', 2, 73]", "cidrBits 73"),
        ("!Cidr ['2001:db8::/63', 4, 64]", "holds only 2"),
        ("!Cidr [nope, 1, 8]", "not a CIDR"),
        ("!Cidr [10.0.0.0/16, 1]", "[ipBlock, count, cidrBits]"),
        ("!Cidr [10.0.0.0/16, 1, 0]", "cidrBits 0"),
    ] {
        let e = err_of(&one("", &format!("      A: {bad}\n")), &[]);
        assert_eq!(e.path, "Resources.V.Properties.A", "{bad}");
        assert!(e.message.contains(want), "{bad}: {e}");
    }
}

#[test]
fn no_value_removes_the_property() {
    let v = props_of(
        &one(
            "",
            "      A: !Ref AWS::NoValue\n      B: [1, !Ref AWS::NoValue]\n",
        ),
        &[],
        "V",
    )
    .unwrap();
    assert!(v.get("A").is_none());
    assert_eq!(v["B"], json!([1]));
}

#[test]
fn ssm_dynamic_references_resolve_from_the_store() {
    let t = one("", "      A: 'db={{resolve:ssm:/app/db/host}}:{{resolve:ssm:/app/db/port:2}}'\n      B: '{{resolve:secretsmanager:s:SecretString:pw}}'\n");
    let e = err_of(&t, &[]);
    assert!(
        e.message
            .starts_with("Unable to fetch parameters [/app/db/host]"),
        "{e}"
    );
    let mut ctx = Context::new("stack");
    for (n, v) in [("/app/db/host", "10.0.1.10"), ("/app/db/port", "5432")] {
        ctx.ssm.insert(
            n.into(),
            crate::ssm::Parameter {
                kind: "String".into(),
                value: v.into(),
                version: 2,
                last_modified_date: 0,
            },
        );
    }
    let (t, env) = inst_in(&t, &[], ctx).unwrap();
    let v = Resolver::new(&t, env)
        .resolve(&Value::Object(t.resources["V"].properties.clone()), "p")
        .unwrap();
    assert_eq!(v["A"], "db=10.0.1.10:5432");
    assert_eq!(v["B"], "{{resolve:secretsmanager:s:SecretString:pw}}");
}
