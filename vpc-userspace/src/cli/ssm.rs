//! `vpc ssm`: the local SSM Parameter Store that template parameters of
//! type `AWS::SSM::Parameter::Value<...>` resolve from (one per machine,
//! as an account and region have one; `$VPC_PARAMETER_STORE` names
//! another file).
use anyhow::Result;
use serde_json::json;

use super::{
    output::{print_fields, print_json},
    Output,
};

#[derive(clap::Subcommand)]
pub enum SsmOp {
    /// PutParameter: a parameter's value (a new version with --overwrite).
    PutParameter {
        #[arg(long)]
        name: String,
        #[arg(long)]
        value: String,
        /// String, StringList or SecureString.
        #[arg(long = "type", default_value = "String")]
        kind: String,
        #[arg(long)]
        overwrite: bool,
    },
    /// GetParameter: a stored parameter, or the documented fallback of a
    /// public one (`/aws/service/...`, `/cdk-bootstrap/<q>/version`).
    GetParameter {
        #[arg(long)]
        name: String,
    },
    /// DeleteParameter.
    DeleteParameter {
        #[arg(long)]
        name: String,
    },
    /// DescribeParameters: every stored parameter.
    DescribeParameters,
}

fn view(name: &str, p: &vpc::ssm::Parameter) -> serde_json::Value {
    vpc::ssm::view(
        name,
        p,
        vpc::template::DEFAULT_REGION,
        vpc::template::DEFAULT_ACCOUNT,
    )
}

pub fn ssm(op: SsmOp, out: Output) -> Result<()> {
    let path = vpc::ssm::path();
    let v = match op {
        SsmOp::PutParameter {
            name,
            value,
            kind,
            overwrite,
        } => {
            let version = vpc::ssm::put(&path, &name, &value, &kind, overwrite)?;
            json!({"Version": version, "Tier": "Standard"})
        }
        SsmOp::GetParameter { name } => {
            let stored = vpc::ssm::load(&path)?;
            let p = vpc::ssm::get(&stored, &name)
                .ok_or_else(|| anyhow::anyhow!("ParameterNotFound: Parameter {name} not found."))?;
            json!({"Parameter": view(&name, &p)})
        }
        SsmOp::DeleteParameter { name } => {
            vpc::ssm::delete(&path, &name)?;
            return Ok(());
        }
        SsmOp::DescribeParameters => {
            let stored = vpc::ssm::load(&path)?;
            json!({"Parameters": stored.iter().map(|(n, p)| view(n, p)).collect::<Vec<_>>()})
        }
    };
    if out.is_json() {
        print_json(&v)
    } else {
        print_fields(&v);
        Ok(())
    }
}
