//! The integration tests, in one binary as aya's are: a module per AWS
//! concept. Run as root: `cargo test -p vpc-tests --test integration`, one
//! module with a filter (`-- routing::`, `-- datapath::network_acls::`).

/// `vpc bench --throughput` in a short run: every path forwards.
mod bench;
/// Real CDK apps synthesized by aws-cdk-lib, brought up from cdk.out.
mod cdk;
/// The CloudFormation API (stacks, change sets, events) with the AWS CLI
/// and boto3.
mod cloudformation;
/// The cluster store (issue 21) against a real etcd: members, the
/// desired state, the write lock, NAT port slices, the scale simulation.
mod cluster_store;
/// The console in a real browser (headless Chromium, Selenium): functions,
/// the Edit VPC form, test invokes, flows with their drops, the topology.
mod console;
/// The agent and `vpc apply` killed at random moments: convergence, no leaks.
mod crash;
/// The router through BPF_PROG_TEST_RUN, a module per concept: security
/// groups, network ACLs, conntrack and NAT, what makes a packet.
mod datapath;
/// End to end: `vpc up`, real namespaces, sockets and `nc`, a module per
/// concept: connectivity, up and down, the agent, policy, dual stack, ICMP,
/// ENI scaling, per-interface allowances.
mod e2e;
/// EC2's API (the AWS CLI, boto3) over the deployment's stacks, with real
/// traffic; moto's EC2 tests in server mode.
mod ec2;
/// VPC endpoints end to end.
mod endpoints;
/// VPC Flow Logs end to end: the exactness of the records (with the known
/// traffic they count), the ring buffer, flow logs changed by `vpc apply`.
mod flow_logs;
/// A function's code: real zips (boto3), local paths, CDK assets, the
/// store of packages; reserved concurrency; `vpc run`'s invocation.
mod function_code;
/// Function URLs and Lambda's public endpoint on the internet, end to end.
mod function_urls;
/// A million random and mutated frames through BPF_PROG_TEST_RUN on
/// several deployments: nothing forwarded that the reference does not
/// allow, every drop counted with its reason.
mod fuzz;
/// Route tables and gateways end to end.
mod gateways;
/// IAM where Lambda's VPC settings need it: execution roles, the
/// caller's policies with the VPC condition keys, ENIs a deleted role
/// leaves (boto3, the AWS CLI).
mod iam;
/// Function logs (CloudWatch-Logs-shaped, outside the VPC), `vpc logs`, Invoke's LogType and InvocationType, the AWS CLI.
mod lambda_logs;
/// The function and ENI lifecycle on a test clock.
mod lifecycle;
/// Every map at its limit: new work refused with its counted reason,
/// established work unharmed; the router's table sizes as quotas.
mod limits;
/// One VPC over three hosts: etcd, the VXLAN overlay, Hyperplane ENIs
/// shared across hosts, the loss of a host.
mod multi_host;
/// Metrics, `vpc status` and `vpc top`.
mod observability;
/// Separate VPCs with the same block, side by side: hosts, functions,
/// NAT gateways and conntrack, each VPC in its own address space.
mod overlapping_vpcs;
/// `vpc apply` at runtime: the reconciler end to end.
mod reconcile;
/// Property tests against the reference model.
mod reference;
/// The VPC resolver end to end.
mod resolver;
/// Route tables and gateways through BPF_PROG_TEST_RUN, a module per
/// concept: route tables, the internet gateway, NAT gateways, endpoint
/// routes, IPv6.
mod routing;
/// Real handlers (Python, Node.js) through the Lambda Runtime API.
mod runtimes;
/// SAM templates (aws-sam-translator's expansion) brought up and reached.
mod sam;
/// boto3 against the Lambda API.
mod sdk;
/// CloudFormation as written: conditions on the datapath, every intrinsic,
/// SSM parameters and rules, exports across deployments, refused types.
mod templates;
