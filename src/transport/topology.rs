//! [`Topology`]: which kind of Redis deployment a URL names, parsed once before anything
//! connects.
//!
//! - `redis://`, `rediss://`, `unix://`: one server ([`Endpoint`]).
//! - `redis+cluster://[user:password@]host:port[,host:port…]`: a Redis Cluster, reached through
//!   any of the seed nodes; `rediss+cluster://` for TLS.
//! - `redis+sentinel://[user:password@]host:port[,host:port…]/master_name[/db]`: a primary
//!   watched by Sentinel; the hosts are sentinels, the credentials and database those of the
//!   primary. `rediss+sentinel://` uses TLS to the sentinels and the primary. Sentinels that
//!   require their own password take `?sentinel_user=…&sentinel_password=…`.
//!
//! A `#insecure` fragment on a TLS URL skips certificate verification (as for `rediss://`).
//! A port may be left out: 6379 for cluster nodes, 26379 for sentinels.

use percent_encoding::percent_decode_str;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use super::endpoint::{Credentials, Endpoint};
use crate::error::{Error, Result};

/// The deployment a URL names; see the module docs.
#[derive(Debug)]
pub enum Topology {
    /// One server.
    Standalone(Endpoint),
    /// A Redis Cluster.
    Cluster(ClusterSpec),
    /// A primary found through sentinels.
    Sentinel(SentinelSpec),
}

/// What a `redis+cluster://` URL says. Its `Debug` never shows the password.
pub struct ClusterSpec {
    /// Seed nodes, in URL order (TLS set per [`ClusterSpec::tls`]).
    pub nodes: Vec<(String, u16)>,
    pub tls: Option<Tls>,
    pub(crate) credentials: Option<Credentials>,
    pub redacted_url: String,
}

/// What a `redis+sentinel://` URL says. Its `Debug` never shows a password.
pub struct SentinelSpec {
    /// Sentinel addresses, in URL order.
    pub sentinels: Vec<(String, u16)>,
    /// The name the sentinels monitor the primary under.
    pub master_name: String,
    pub db: i64,
    pub tls: Option<Tls>,
    /// Credentials of the primary (and its replicas).
    pub(crate) credentials: Option<Credentials>,
    /// Credentials of the sentinels, when they require a password of their own.
    pub(crate) sentinel_credentials: Option<Credentials>,
    pub redacted_url: String,
}

/// TLS on every connection of a topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Verify the server certificate and host name.
    Verified,
    /// Accept any certificate (`#insecure`).
    Insecure,
}

impl std::fmt::Debug for ClusterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSpec").field("url", &self.redacted_url).finish()
    }
}

impl std::fmt::Debug for SentinelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelSpec").field("url", &self.redacted_url).finish()
    }
}

impl Topology {
    /// Parse `url`; a malformed one is `InvalidInput` naming what is wrong (password hidden).
    pub fn parse(url: &str) -> Result<Topology> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Endpoint::parse(url).map(Topology::Standalone);
        };
        let (tls, kind) = match scheme.to_ascii_lowercase().as_str() {
            "redis+cluster" => (false, Kind::Cluster),
            "rediss+cluster" => (true, Kind::Cluster),
            "redis+sentinel" => (false, Kind::Sentinel),
            "rediss+sentinel" => (true, Kind::Sentinel),
            _ => return Endpoint::parse(url).map(Topology::Standalone),
        };
        let redacted_url = redact_multi_host_url(url);
        let bad = |why: String| Error::invalid(format!("bad Redis URL {redacted_url}: {why}"));
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let tls = match (tls, fragment) {
            (true, Some("insecure")) => Some(Tls::Insecure),
            (true, None) => Some(Tls::Verified),
            (false, None) => None,
            (_, Some(f)) => {
                return Err(bad(format!(
                    "unknown fragment #{f} (only rediss+… URLs take #insecure)"
                )))
            }
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let credentials = userinfo.map(parse_userinfo).transpose().map_err(bad)?.flatten();
        let default_port = match kind {
            Kind::Cluster => 6379,
            Kind::Sentinel => 26379,
        };
        let nodes = parse_hosts(hosts, default_port).map_err(bad)?;
        let mut params = parse_query(query).map_err(bad)?;
        match kind {
            Kind::Cluster => {
                if !matches!(path, "" | "0") {
                    return Err(bad(format!(
                        "a cluster has only database 0, the URL names {path:?} (give no path)"
                    )));
                }
                if let Some((k, _)) = params.first() {
                    return Err(bad(format!("unknown parameter {k:?} for a cluster URL")));
                }
                Ok(Topology::Cluster(ClusterSpec {
                    nodes,
                    tls,
                    credentials,
                    redacted_url,
                }))
            }
            Kind::Sentinel => {
                let (master_name, db) = match path.split_once('/') {
                    Some((name, db)) => (name, Some(db)),
                    None => (path, None),
                };
                if master_name.is_empty() {
                    return Err(bad("a sentinel URL needs the primary's name as its path: \
                         redis+sentinel://host:26379/mymaster"
                        .to_owned()));
                }
                let master_name = decode(master_name);
                let db = match db.filter(|d| !d.is_empty()) {
                    None => 0,
                    Some(d) => d
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| bad(format!("database {d:?} is not a number")))?,
                };
                let mut take = |name: &str| params.iter().position(|(k, _)| k == name).map(|i| params.remove(i).1);
                let sentinel_user = take("sentinel_user");
                let sentinel_credentials = match (take("sentinel_password"), sentinel_user) {
                    (Some(password), user) => Some(Credentials { user, password }),
                    (None, Some(_)) => return Err(bad("sentinel_user needs sentinel_password".to_owned())),
                    (None, None) => None,
                };
                if let Some((k, _)) = params.first() {
                    return Err(bad(format!(
                        "unknown parameter {k:?} for a sentinel URL (sentinel_user, sentinel_password)"
                    )));
                }
                Ok(Topology::Sentinel(SentinelSpec {
                    sentinels: nodes,
                    master_name,
                    db,
                    tls,
                    credentials,
                    sentinel_credentials,
                    redacted_url,
                }))
            }
        }
    }

    /// The URL with every password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        match self {
            Topology::Standalone(e) => e.redacted_url(),
            Topology::Cluster(c) => &c.redacted_url,
            Topology::Sentinel(s) => &s.redacted_url,
        }
    }

    /// `"standalone"`, `"cluster"` or `"sentinel"`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Topology::Standalone(_) => "standalone",
            Topology::Cluster(_) => "cluster",
            Topology::Sentinel(_) => "sentinel",
        }
    }
}

impl Tls {
    /// redis-rs connection info of `host:port` with this TLS (or none), nothing else set.
    pub(crate) fn info(tls: Option<Tls>, host: &str, port: u16) -> ConnectionInfo {
        Tls::addr(tls, host, port)
            .into_connection_info()
            .expect("an address is always valid connection info")
    }

    /// The redis-rs address of `host:port` with this TLS (or none).
    pub(crate) fn addr(tls: Option<Tls>, host: &str, port: u16) -> ConnectionAddr {
        match tls {
            None => ConnectionAddr::Tcp(host.to_owned(), port),
            Some(t) => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: t == Tls::Insecure,
                tls_params: None,
            },
        }
    }
}

enum Kind {
    Cluster,
    Sentinel,
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// `user:password`, `:password` or `user` (no password: no AUTH, like `redis://user@host`).
fn parse_userinfo(userinfo: &str) -> std::result::Result<Option<Credentials>, String> {
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    Ok(password.map(|p| Credentials {
        user: Some(decode(user)).filter(|u| !u.is_empty()),
        password: decode(p),
    }))
}

/// `host:port,host:port,[::1]:port`; at least one, ports 1–65535.
fn parse_hosts(hosts: &str, default_port: u16) -> std::result::Result<Vec<(String, u16)>, String> {
    if hosts.is_empty() {
        return Err("no host: list at least one host:port".to_owned());
    }
    hosts
        .split(',')
        .map(|item| {
            let (host, port) = if let Some(v6) = item.strip_prefix('[') {
                let (host, after) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("unclosed [ in host {item:?}"))?;
                (host, after.strip_prefix(':'))
            } else {
                match item.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (item, None),
                }
            };
            if host.is_empty() || host.contains(['@', '/', ' ', ':']) && !item.starts_with('[') {
                return Err(format!("{item:?} is not host:port"));
            }
            let port = match port {
                None => default_port,
                Some(p) => p
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| format!("port {p:?} of {item:?} is not 1-65535"))?,
            };
            Ok((host.to_owned(), port))
        })
        .collect()
}

fn parse_query(query: Option<&str>) -> std::result::Result<Vec<(String, String)>, String> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(Vec::new());
    };
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((decode(k), decode(v))),
            _ => Err(format!(
                "parameter {:?} is not name=value",
                pair.split('=').next().unwrap_or("")
            )),
        })
        .collect()
}

/// A `redis+cluster://` or `redis+sentinel://` URL with the password of its user info and any
/// `sentinel_password=` replaced by `***` (the host list is not a URL the `url` crate reads).
pub(crate) fn redact_multi_host_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable redis url>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{hosts}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, format!("#{f}")),
                None => (query, String::new()),
            };
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("sentinel_password") => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}{fragment}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(url: &str) -> ClusterSpec {
        match Topology::parse(url).unwrap() {
            Topology::Cluster(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn sentinel(url: &str) -> SentinelSpec {
        match Topology::parse(url).unwrap() {
            Topology::Sentinel(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn error(url: &str) -> String {
        match Topology::parse(url) {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn cluster_urls_list_seed_nodes_with_tls_and_acl_user() {
        let c = cluster("redis+cluster://h1:7000,h2:7001,[::1]:7002");
        assert_eq!(
            c.nodes,
            vec![("h1".into(), 7000), ("h2".into(), 7001), ("::1".into(), 7002)]
        );
        assert!(c.tls.is_none() && c.credentials.is_none());
        let c = cluster("rediss+cluster://alice:p%40ss@h1,h2:7001#insecure");
        assert_eq!(c.nodes, vec![("h1".into(), 6379), ("h2".into(), 7001)]);
        assert_eq!(c.tls, Some(Tls::Insecure));
        let creds = c.credentials.as_ref().unwrap();
        assert_eq!(
            (creds.user.as_deref(), creds.password.as_str()),
            (Some("alice"), "p@ss")
        );
        assert_eq!(c.redacted_url, "rediss+cluster://alice:***@h1,h2:7001#insecure");
        assert!(!format!("{c:?}").contains("p%40ss"));
        assert_eq!(cluster("rediss+cluster://h1:1/").tls, Some(Tls::Verified));
    }

    #[test]
    fn sentinel_urls_name_the_primary_and_database() {
        let s = sentinel("redis+sentinel://:pw@s1:26379,s2/mymaster/2?sentinel_password=spw");
        assert_eq!(s.sentinels, vec![("s1".into(), 26379), ("s2".into(), 26379)]);
        assert_eq!((s.master_name.as_str(), s.db), ("mymaster", 2));
        assert_eq!(s.credentials.as_ref().unwrap().password, "pw");
        let sc = s.sentinel_credentials.as_ref().unwrap();
        assert_eq!((sc.user.as_deref(), sc.password.as_str()), (None, "spw"));
        assert_eq!(
            s.redacted_url,
            "redis+sentinel://:***@s1:26379,s2/mymaster/2?sentinel_password=***"
        );
        let s = sentinel("rediss+sentinel://u:p@s1:5000/m");
        assert_eq!((s.db, s.tls), (0, Some(Tls::Verified)));
    }

    #[test]
    fn malformed_urls_say_what_is_wrong_without_the_password() {
        for (url, says) in [
            ("redis+cluster://", "no host"),
            ("redis+cluster://u:secret@h1:70000", "not 1-65535"),
            ("redis+cluster://h1:7000,,h2:7001", "not host:port"),
            ("redis+cluster://h1:x", "not 1-65535"),
            ("redis+cluster://h1:7000/3", "only database 0"),
            ("redis+cluster://h1:7000?foo=1", "unknown parameter"),
            ("redis+cluster://h1:7000#insecure", "#insecure"),
            ("redis+sentinel://u:secret@s1:26379", "primary's name"),
            ("redis+sentinel://s1:26379/", "primary's name"),
            ("redis+sentinel://s1:26379/m/x", "not a number"),
            ("redis+sentinel://s1/m?sentinel_user=a", "needs sentinel_password"),
            ("redis+sentinel://s1/m?timeout=1", "unknown parameter"),
        ] {
            let message = error(url);
            assert!(message.contains(says), "{url}: {message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn single_server_urls_stay_standalone() {
        for url in ["redis://127.0.0.1:6379/0", "rediss://h:1", "unix:///tmp/r.sock"] {
            assert!(matches!(Topology::parse(url), Ok(Topology::Standalone(_))), "{url}");
        }
        assert!(matches!(Topology::parse("http://x"), Err(Error::InvalidInput(_))));
    }
}
