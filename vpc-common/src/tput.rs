//! The throughput harness's slots (`TPUT_CFG`, `TPUT_COUNT`), shared by the
//! reflector in the kernel and the bench that drives it.

/// `TPUT_CFG`: distinct client source ports the reflector turns over.
pub const CFG_FLOWS: u32 = 0;
/// `TPUT_CFG`: the client's first source port.
pub const CFG_CLIENT_PORT: u32 = 1;
/// `TPUT_CFG`: the server's UDP port (the side sending to it is the client).
pub const CFG_SERVER_PORT: u32 = 2;
/// `TPUT_CFG`: 1 drops every frame, counting it as drained.
pub const CFG_STOP: u32 = 3;
pub const CFG_LEN: u32 = 4;

/// `TPUT_COUNT` (per CPU): frames reflected.
pub const COUNT_REFLECTED: u32 = 0;
/// `TPUT_COUNT`: frames drained after the stop.
pub const COUNT_DRAINED: u32 = 1;
/// `TPUT_COUNT`: the client side's flow counter.
pub const COUNT_FLOW: u32 = 2;
pub const COUNT_LEN: u32 = 3;
