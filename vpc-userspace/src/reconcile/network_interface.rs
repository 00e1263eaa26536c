//! DeleteNetworkInterface on the running deployment: the model's decision
//! ([`Model::delete_network_interface`]: an `available` Hyperplane ENI
//! goes, one in use is refused in EC2's words), then the reconciler: its
//! map entries and address go, the policy follows. The CLI's `vpc eni
//! delete` and EC2's API call it.
use anyhow::Result;

use super::apply_edit;
use crate::model::{Ec2Error, HyperplaneEniSpec};

/// Deletes network interface `id` of deployment `name`: `Ok(Err)` when EC2
/// would refuse it (nothing changed).
pub fn delete_network_interface(
    name: &str,
    id: &str,
) -> Result<std::result::Result<HyperplaneEniSpec, Ec2Error>> {
    let mut deleted = None;
    let r = apply_edit(name, |m, _, _| {
        deleted = Some(m.delete_network_interface(id)?);
        Ok(())
    });
    match r {
        Ok(_) => Ok(Ok(deleted.expect("deleted"))),
        Err(e) => match e.downcast::<Ec2Error>() {
            Ok(refused) => Ok(Err(refused)),
            Err(e) => Err(e),
        },
    }
}
