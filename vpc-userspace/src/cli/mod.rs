//! The `vpc` command line: its arguments and what each command runs. Each
//! command group is a module; the work is the library's (`vpc::...`).
use std::{
    process::ExitCode,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

mod bench;
mod cluster;
mod deploy;
mod eni;
mod exec;
mod explain;
mod lambda;
mod logs;
mod output;
mod sg;
mod ssm;
mod status;
mod trace;

pub use output::Output;

#[derive(Parser)]
#[command(
    name = "vpc",
    version,
    about = "AWS Lambda VPC data path on veth pairs, enforced by XDP"
)]
pub struct Cli {
    /// Deployment name: prefixes its namespaces and pins, so several can run at once.
    #[arg(long, global = true, env = "VPC_NAME", default_value = "vpc")]
    name: String,
    /// How commands that print state print it (status, eni list, conntrack
    /// list, flows tail, explain, validate, bench and the Lambda API's
    /// commands): `table` for people, `json` for programs.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check a template and print what it would build; applies nothing.
    Validate(deploy::TemplateArgs),
    /// Apply a template and start the agent in the background.
    Up(deploy::UpArgs),
    /// Re-apply a changed template to a running deployment: security groups
    /// and network ACLs change atomically; topology changes are refused.
    Apply(deploy::TemplateArgs),
    /// Delete one of the deployment's stacks (CloudFormation's DeleteStack):
    /// its resources go, the other stacks' stay.
    DeleteStack { stack: String },
    /// Apply a template, show it live, and tear it down on Ctrl-C / SIGTERM.
    Run(deploy::RunCmd),
    /// Functions, ENIs, hosts, attach mode and packet counters.
    Status(status::StatusArgs),
    /// `vpc status`, refreshed live with packet rates (Ctrl-C stops).
    Top(status::TopArgs),
    /// Invoke FUNCTION (logical id or FunctionName) through the Lambda API:
    /// with `-- CMD`, run CMD in its execution environment once the API
    /// allows the invocation; without, Invoke its handler with --payload.
    Invoke(lambda::InvokeArgs),
    /// A function's logs (log group `/aws/lambda/<FunctionName>`): the
    /// events of every stream, oldest first; `--follow` until Ctrl-C.
    Logs(logs::LogsArgs),
    /// Lambda's GetFunction (`--output json`: as the API returns it).
    GetFunction(lambda::GetFunctionArgs),
    /// Lambda's ListFunctions.
    ListFunctions,
    /// Lambda's UpdateFunctionConfiguration: a new VpcConfig.
    UpdateFunctionConfiguration(lambda::UpdateArgs),
    /// Lambda's DeleteFunction.
    DeleteFunction { function: String },
    /// Lambda's PublishVersion: the version keeps its VpcConfig and its ENI.
    PublishVersion { function: String },
    /// Shared subnets: `vpc ram disassociate SHARE --subnet-ids A` unshares
    /// (the participants' functions lose the subnet at once), `associate`
    /// shares again.
    Ram {
        #[command(subcommand)]
        op: lambda::RamOp,
    },
    /// The test clock (`vpc up --clock test`): `vpc clock advance 3d`.
    Clock {
        #[command(subcommand)]
        op: lambda::ClockOp,
    },
    /// Run CMD in the namespace of an instance or network interface.
    Exec(exec::ExecArgs),
    /// Tear the deployment down: namespaces, links, pins, state.
    Down,
    /// Compare what is built (namespaces, programs on ports, map entries,
    /// NAT claims) with the desired state; exit status 1 and each
    /// difference when they differ.
    Verify,
    /// Add or remove one security-group rule on the running deployment (as
    /// EC2's AuthorizeSecurityGroupIngress & co.), applied atomically.
    Sg {
        #[command(subcommand)]
        op: sg::SgOp,
    },
    /// The local SSM Parameter Store (what `AWS::SSM::Parameter::Value<...>`
    /// template parameters resolve from): put-parameter, get-parameter,
    /// delete-parameter, describe-parameters.
    Ssm {
        #[command(subcommand)]
        op: ssm::SsmOp,
    },
    /// Tracked connections, as `conntrack -L` shows them.
    Conntrack {
        #[command(subcommand)]
        op: status::ConntrackOp,
    },
    /// Why a new connection would be allowed or dropped, rule by rule (the
    /// reference model of AWS's semantics, which the datapath is tested
    /// against).
    Explain(explain::ExplainArgs),
    /// Print the embedded default template.
    DefaultTemplate,
    /// Measure ns/packet through BPF_PROG_TEST_RUN.
    Bench(bench::BenchArgs),
    /// Every verdict of the router, one line each (forwarded: ports in and
    /// out, the tuple; dropped: the reason, the tuple), until Ctrl-C or
    /// `--for`. Off (the datapath logs nothing) when no trace runs.
    Trace(trace::TraceArgs),
    /// Hyperplane ENIs: `vpc eni list [--output json]`, `vpc eni delete ID`.
    Eni {
        #[command(subcommand)]
        op: status::EniOp,
    },
    /// VPC Flow Logs: `vpc flows tail [--eni ID] [--format F]`.
    Flows {
        #[command(subcommand)]
        op: status::FlowsOp,
    },
    /// The agent (`up` starts it in the background). It adopts the pinned
    /// datapath, which forwards without it: after a crash, `vpc agent
    /// --detach` starts a new one and no connection is lost. Refused while
    /// another agent of the deployment runs.
    Agent {
        /// Start it in the background (log: /run/vpc/NAME/agent.log).
        #[arg(long)]
        detach: bool,
    },
    /// The cluster store on etcd: `vpc cluster simulate --etcd URL --hosts
    /// 100 --functions 100000`.
    Cluster {
        #[command(subcommand)]
        op: cluster::ClusterOp,
    },
    /// Print a completion script: `vpc completions bash >
    /// /etc/bash_completion.d/vpc`, `vpc completions zsh >
    /// ~/.zfunc/_vpc`, `vpc completions fish >
    /// ~/.config/fish/completions/vpc.fish`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs the command `cli` names; its exit code.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let name = cli.name.as_str();
    let out = cli.output;
    match cli.cmd {
        Cmd::Validate(t) => deploy::validate(name, &t, out)?,
        Cmd::Up(a) => deploy::up(name, &a)?,
        Cmd::Apply(t) => deploy::apply(name, &t)?,
        Cmd::DeleteStack { stack } => deploy::delete_stack(name, &stack)?,
        Cmd::Run(r) => deploy::run(name, &r)?,
        Cmd::Down => deploy::down(name)?,
        Cmd::Verify => {
            let drift = vpc::reconcile::verify(name)?;
            if out == Output::Json {
                output::write_stdout(&serde_json::to_vec_pretty(&drift)?)?;
            } else if drift.is_empty() {
                println!("{name}: what is built is what the desired state says");
            }
            if !drift.is_empty() {
                if out != Output::Json {
                    for d in &drift {
                        println!("{d}");
                    }
                }
                return Ok(ExitCode::from(1));
            }
        }
        Cmd::Agent { detach } => deploy::agent(name, detach)?,
        Cmd::Status(a) => status::status(name, &a, out)?,
        Cmd::Top(a) => status::top(name, a.interval, out)?,
        Cmd::Conntrack { op } => status::conntrack(name, op, out)?,
        Cmd::Eni { op } => status::eni(name, op, out)?,
        Cmd::Flows { op } => status::flows(name, op, out)?,
        Cmd::Invoke(a) => return lambda::invoke(name, a),
        Cmd::Logs(a) => return logs::logs(name, &a, out),
        Cmd::GetFunction(a) => return lambda::get_function(name, &a, out),
        Cmd::ListFunctions => return lambda::list_functions(name, out),
        Cmd::UpdateFunctionConfiguration(a) => return lambda::update(name, &a, out),
        Cmd::DeleteFunction { function } => lambda::delete(name, &function)?,
        Cmd::PublishVersion { function } => return lambda::publish(name, &function, out),
        Cmd::Ram { op } => return lambda::ram(name, op, out),
        Cmd::Clock { op } => return lambda::clock(name, op, out),
        Cmd::Sg { op } => sg::edit(name, op)?,
        Cmd::Ssm { op } => ssm::ssm(op, out)?,
        Cmd::Explain(a) => return explain::explain(name, a, out),
        Cmd::Exec(a) => return exec::exec(name, &a),
        Cmd::Bench(a) => bench::bench(&a, out)?,
        Cmd::Cluster { op } => cluster::cluster(op, out)?,
        Cmd::Trace(a) => trace::trace(name, &a)?,
        Cmd::DefaultTemplate => print!("{}", vpc::DEFAULT_TEMPLATE),
        Cmd::Completions { shell } => {
            let mut script = vec![];
            clap_complete::generate(shell, &mut Cli::command(), "vpc", &mut script);
            output::write_stdout(&script)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `500ms`, `2s`, `3m`, `1h`, `14d`; a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 500ms, 2s, 3m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return Err(format!("{s:?}: unit must be ms, s, m, h or d")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Set by SIGINT, SIGTERM or SIGHUP.
fn signal_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn json_is_output_json() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map_err(|e| e.to_string());
        for args in [
            &["vpc", "status", "--json"][..],
            &["vpc", "status", "--output", "json"],
            &["vpc", "--output", "json", "status"],
        ] {
            let cli = parse(args).unwrap();
            let Cmd::Status(a) = &cli.cmd else {
                panic!("{args:?}")
            };
            assert_eq!(cli.output.or_json(a.json), Output::Json, "{args:?}");
        }
        let cli = parse(&["vpc", "eni", "list"]).unwrap();
        assert_eq!(cli.output, Output::Table);
        assert!(parse(&["vpc", "conntrack", "list", "--json"]).is_ok());
        assert!(parse(&["vpc", "status", "--output", "yaml"]).is_err());
    }

    #[test]
    fn json_is_hidden_from_help() {
        let help = match Cli::try_parse_from(["vpc", "status", "--help"]) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("--help parsed"),
        };
        assert!(help.contains("--output"), "{help}");
        assert!(!help.contains("--json"), "{help}");
    }

    #[test]
    fn completions() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut script = vec![];
            clap_complete::generate(shell, &mut Cli::command(), "vpc", &mut script);
            let script = String::from_utf8(script).unwrap();
            for word in ["authorize-ingress", "--output", "completions"] {
                assert!(script.contains(word), "{shell}: {word}");
            }
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("2w").is_err());
    }
}
