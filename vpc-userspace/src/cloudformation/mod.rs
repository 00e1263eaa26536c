//! CloudFormation stacks. A deployment's desired state holds its stacks
//! (name, template, parameters, status, events), in its store beside the
//! model and written with it in one transaction; the model is every
//! applied stack's template built as one network
//! ([`crate::model::build_stacks`]). `vpc up T` creates the deployment's
//! first stack (named after the deployment unless `--stack` says), `vpc
//! apply T` updates it (or creates another: `--stack NAME`), `vpc
//! delete-stack` deletes one; the agent's CloudFormation API does the same
//! through [`operations`], so templates and stacks are one path.
use std::{collections::BTreeMap, path::PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::state::store_of;

pub mod api;
pub mod change_sets;
mod describe;
pub mod operations;
/// Also IAM's and EC2's query answers ([`crate::iam`], [`crate::ec2`]).
pub mod xml;

/// The store key of the stacks.
pub const STACKS: &str = "stacks";

/// At most this many events are kept per stack (the oldest go first).
pub const MAX_EVENTS: usize = 2_000;

/// One stack of a deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    pub name: String,
    /// `arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>`.
    pub stack_id: String,
    /// The template applied (as written: SAM's is expanded at each build).
    pub template_body: String,
    /// Its directory, where local code paths are found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_dir: Option<PathBuf>,
    /// How messages name the template (its path, or where it came from).
    pub label: String,
    /// Parameter values given (the others take their `Default`).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// `CREATE_COMPLETE`, `UPDATE_ROLLBACK_COMPLETE`, ...
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_ms: Option<u64>,
    /// Oldest first.
    #[serde(default)]
    pub events: Vec<StackEvent>,
    /// `Capabilities` acknowledged (the API's).
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Its change sets, and the one last executed.
    #[serde(default)]
    pub change_sets: Vec<change_sets::ChangeSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_set_id: Option<String>,
}

/// One event of a stack or of one of its resources (DescribeStackEvents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackEvent {
    pub event_id: String,
    /// The stack's own events carry its name as logical id.
    pub logical_id: String,
    pub physical_id: String,
    pub resource_type: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub timestamp_ms: u64,
}

impl Stack {
    /// Whether its template is part of the deployment's model: created
    /// and not deleted (a failed creation rolled back is not, and an
    /// update rolled back is its previous template again).
    pub fn applied(&self) -> bool {
        matches!(
            self.status.as_str(),
            "CREATE_COMPLETE"
                | "UPDATE_COMPLETE"
                | "UPDATE_ROLLBACK_COMPLETE"
                | "UPDATE_IN_PROGRESS"
                | "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
                | "UPDATE_ROLLBACK_IN_PROGRESS"
                | "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"
                | "DELETE_IN_PROGRESS"
                | "DELETE_FAILED"
        )
    }

    /// Whether it is gone (DescribeStacks by name no longer finds it).
    pub fn deleted(&self) -> bool {
        self.status == "DELETE_COMPLETE"
    }

    /// Whether it only holds a change set that would create it.
    pub fn in_review(&self) -> bool {
        self.status == "REVIEW_IN_PROGRESS"
    }

    /// Appends an event, keeping at most [`MAX_EVENTS`].
    pub fn event(
        &mut self,
        (logical_id, physical_id, resource_type): (&str, &str, &str),
        status: &str,
        reason: Option<String>,
        now_ms: u64,
    ) {
        let n = self.events.len() as u64;
        self.events.push(StackEvent {
            event_id: event_id(&self.stack_id, logical_id, status, now_ms, n),
            logical_id: logical_id.into(),
            physical_id: physical_id.into(),
            resource_type: resource_type.into(),
            status: status.into(),
            reason,
            timestamp_ms: now_ms,
        });
        if self.events.len() > MAX_EVENTS {
            let extra = self.events.len() - MAX_EVENTS;
            self.events.drain(..extra);
        }
    }

    /// An event of the stack itself.
    pub fn stack_event(&mut self, status: &str, reason: Option<String>, now_ms: u64) {
        let (name, id) = (self.name.clone(), self.stack_id.clone());
        self.event(
            (&name, &id, "AWS::CloudFormation::Stack"),
            status,
            reason,
            now_ms,
        );
    }

    /// Sets its status, with the stack's event.
    pub fn set_status(&mut self, status: &str, reason: Option<String>, now_ms: u64) {
        self.status = status.into();
        self.status_reason = reason.clone();
        self.stack_event(status, reason, now_ms);
    }
}

/// An event's id, as CloudFormation forms them (a UUID; a resource's
/// event: `<logical id>-<status>-<timestamp>`).
fn event_id(stack_id: &str, logical_id: &str, status: &str, ms: u64, n: u64) -> String {
    let h = crate::template::fnv1a(&format!("{stack_id}/{logical_id}/{status}/{ms}/{n}"));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xffff,
        n & 0xffff,
        ms & 0xffff_ffff_ffff
    )
}

/// The deployment's stacks (none: a deployment from before stacks, or
/// one that is not up).
pub fn load(name: &str) -> Result<Vec<Stack>> {
    Ok(store_of(name)?.get(STACKS)?.unwrap_or_default())
}

/// Writes the deployment's stacks alone (their status and events when
/// nothing else changes: a failed operation), under its lock.
pub fn save(name: &str, stacks: &[Stack]) -> Result<()> {
    let _lock = crate::state::lock(name)?;
    store_of(name)?.put(STACKS, &stacks)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
