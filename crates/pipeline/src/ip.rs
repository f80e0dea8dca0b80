//! `ip("...")` matching for line filters and label filters: a single
//! address, a CIDR range (`192.168.0.0/16`, `2001:db8::/32`) or an
//! inclusive address range (`10.0.0.1-10.0.0.9`).
//!
//! A line filter looks for addresses anywhere in the line, as Loki does:
//! every run of characters that can make up an address (hex digits, `.`
//! and `:`) is tried, and so is each `:`-separated piece of a run (so
//! `10.0.0.1:8080` yields `10.0.0.1`). The line matches if any address
//! found is in the range.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone)]
pub struct IpMatcher {
    from: IpAddr,
    to: IpAddr,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl IpMatcher {
    pub fn parse(text: &str) -> Result<IpMatcher, String> {
        let bad = || format!("invalid ip range {text:?}");
        let text = text.trim();
        if let Some((addr, bits)) = text.split_once('/') {
            let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
            let bits: u32 = bits.trim().parse().map_err(|_| bad())?;
            let width = if addr.is_ipv4() { 32 } else { 128 };
            if bits > width {
                return Err(bad());
            }
            let host_bits = width - bits;
            let mask: u128 = if host_bits == 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            let base = to_u128(addr) & !mask;
            let (from, to) = match addr {
                IpAddr::V4(_) => (
                    IpAddr::V4(Ipv4Addr::from(base as u32)),
                    IpAddr::V4(Ipv4Addr::from((base | mask) as u32)),
                ),
                IpAddr::V6(_) => (
                    IpAddr::V6(Ipv6Addr::from(base)),
                    IpAddr::V6(Ipv6Addr::from(base | mask)),
                ),
            };
            return Ok(IpMatcher { from, to });
        }
        if let Some((from, to)) = text.split_once('-') {
            let from: IpAddr = from.trim().parse().map_err(|_| bad())?;
            let to: IpAddr = to.trim().parse().map_err(|_| bad())?;
            if from.is_ipv4() != to.is_ipv4() || to_u128(from) > to_u128(to) {
                return Err(bad());
            }
            return Ok(IpMatcher { from, to });
        }
        let ip: IpAddr = text.parse().map_err(|_| bad())?;
        Ok(IpMatcher { from: ip, to: ip })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.from.is_ipv4() {
            return false;
        }
        let v = to_u128(ip);
        to_u128(self.from) <= v && v <= to_u128(self.to)
    }

    /// Whether a label value is an address in the range.
    pub fn matches_value(&self, value: &str) -> bool {
        value.trim().parse().is_ok_and(|ip| self.contains(ip))
    }

    /// Whether any address in the line is in the range.
    pub fn matches_line(&self, line: &str) -> bool {
        let is_addr_byte = |b: u8| b.is_ascii_hexdigit() || b == b'.' || b == b':';
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !is_addr_byte(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && is_addr_byte(bytes[i]) {
                i += 1;
            }
            // The run is ASCII, so slicing it is safe.
            let run = &line[start..i];
            if self.matches_token(run) {
                return true;
            }
        }
        false
    }

    fn matches_token(&self, run: &str) -> bool {
        let run = run.trim_matches('.');
        if run.len() < 2 {
            return false;
        }
        if let Ok(ip) = run.parse::<IpAddr>() {
            return self.contains(ip);
        }
        if run.contains(':') {
            let trimmed = run.trim_matches(':');
            if let Ok(ip) = trimmed.parse::<IpAddr>() {
                return self.contains(ip);
            }
            return run
                .split(':')
                .filter(|p| p.contains('.'))
                .any(|p| p.parse::<IpAddr>().is_ok_and(|ip| self.contains(ip)));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let m = IpMatcher::parse("192.168.4.5/16").unwrap();
        assert!(m.matches_value("192.168.0.1"));
        assert!(m.matches_value("192.168.255.255"));
        assert!(!m.matches_value("192.169.0.1"));
        assert!(!m.matches_value("::1"));
        let m = IpMatcher::parse("192.168.4.5-192.168.4.20").unwrap();
        assert!(m.matches_value("192.168.4.20"));
        assert!(!m.matches_value("192.168.4.21"));
        let m = IpMatcher::parse("::1").unwrap();
        assert!(m.matches_value("::1"));
        let m = IpMatcher::parse("2001:db8::/32").unwrap();
        assert!(m.matches_value("2001:db8:1::5"));
        assert!(IpMatcher::parse("10.0.0.0/33").is_err());
        assert!(IpMatcher::parse("10.0.0.9-10.0.0.1").is_err());
        let all = IpMatcher::parse("0.0.0.0/0").unwrap();
        assert!(all.matches_value("8.8.8.8"));
    }

    #[test]
    fn finds_addresses_anywhere_in_a_line() {
        let m = IpMatcher::parse("192.168.4.5/16").unwrap();
        assert!(m.matches_line("request from 192.168.1.7 denied"));
        assert!(m.matches_line("addr=192.168.1.7:8080,"));
        assert!(m.matches_line("[192.168.1.7]"));
        assert!(!m.matches_line("request from 10.1.1.1 denied"));
        assert!(!m.matches_line("version 192.168"));
        let v6 = IpMatcher::parse("2001:db8::/32").unwrap();
        assert!(v6.matches_line("client=[2001:db8::1]:443 ok"));
        assert!(!v6.matches_line("deadbeef cafe"));
    }
}
