//! Checks of export callback URLs against server-side request forgery: only public http(s)
//! destinations, unless an operator allowed a host or network.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use url::Url;

/// Hosts and networks callbacks may reach although they are not public.
#[derive(Debug, Clone, Default)]
pub struct CallbackPolicy {
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

const BLOCKED_HOSTS: [&str; 8] = [
    "localhost",
    "metadata",
    "metadata.google.internal",
    "metadata.azure.internal",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// The networks that are not public unicast destinations.
const BLOCKED_NETS: [&str; 30] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) || ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        return false;
    }
    !BLOCKED_NETS.iter().filter_map(|n| n.parse::<IpNet>().ok()).any(|net| net.contains(&ip))
}

impl CallbackPolicy {
    /// A policy from `--callback-allow` items: host names or CIDRs (a bare IP is a /32 or /128).
    pub fn new(allow: &[String]) -> Result<Self, String> {
        let mut policy = Self::default();
        for item in allow.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            if let Ok(net) = item.parse::<IpNet>() {
                policy.nets.push(net);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                policy.nets.push(IpNet::from(ip));
            } else if item.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
                policy.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!("--callback-allow: '{item}' is neither a host name nor a CIDR"));
            }
        }
        Ok(policy)
    }

    fn ip_allowed(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Checks a callback URL, resolving its host: the parsed URL, or the reason for refusal
    /// (Quay's messages; a blocked destination is the generic `Invalid callback URL`).
    pub fn check(&self, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw.trim()).map_err(|_| "Invalid URL format".to_owned())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("Invalid URL scheme '{}': only HTTP and HTTPS are allowed", url.scheme()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URLs with embedded credentials are not allowed".into());
        }
        let host = match url.host() {
            None => return Err("URL must include a hostname".into()),
            Some(url::Host::Domain("")) => return Err("URL must include a hostname".into()),
            Some(h) => h.to_string(),
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if self.hosts.contains(&bare) {
            return Ok(url);
        }
        if BLOCKED_HOSTS.contains(&bare.as_str()) || bare.ends_with(".internal") || bare.ends_with(".local") {
            return Err("Invalid callback URL".into());
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (bare.as_str(), port)
                .to_socket_addrs()
                .map_err(|_| format!("Cannot resolve hostname '{bare}'"))?
                .map(|a| a.ip())
                .collect(),
        };
        if addrs.is_empty() {
            return Err(format!("Cannot resolve hostname '{bare}'"));
        }
        if addrs.iter().all(|ip| self.ip_allowed(*ip)) { Ok(url) } else { Err("Invalid callback URL".into()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_problem() {
        let p = CallbackPolicy::default();
        assert_eq!(p.check("not a url").unwrap_err(), "Invalid URL format");
        assert_eq!(
            p.check("ftp://example.com/x").unwrap_err(),
            "Invalid URL scheme 'ftp': only HTTP and HTTPS are allowed"
        );
        assert_eq!(
            p.check("https://user:pw@93.184.215.14/").unwrap_err(),
            "URLs with embedded credentials are not allowed"
        );
        for blocked in [
            "http://127.0.0.1:9000/cb",
            "http://localhost/cb",
            "http://10.1.2.3/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://metadata.google.internal/",
            "http://printer.local/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
        ] {
            assert_eq!(p.check(blocked).unwrap_err(), "Invalid callback URL", "{blocked}");
        }
        assert!(p.check("https://93.184.215.14/hook").is_ok());
        assert!(p.check("http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/").is_ok());
    }

    #[test]
    fn the_allow_list_opens_hosts_and_networks() {
        let p = CallbackPolicy::new(&["127.0.0.1".into(), "10.0.0.0/8".into(), "hooks.internal".into()]).unwrap();
        assert!(p.check("http://127.0.0.1:9000/cb").is_ok());
        assert!(p.check("http://10.9.8.7/").is_ok());
        assert!(p.check("http://hooks.internal/").is_ok());
        assert!(p.check("http://192.168.0.1/").is_err());
        assert!(CallbackPolicy::new(&["not a host!".into()]).is_err());
    }
}
