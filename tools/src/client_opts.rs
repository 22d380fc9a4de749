//! The flags raftctl and raft-bench share to reach a secured cluster: credentials (`AUTH`)
//! and TLS to the nodes' TLS client port, and their conversion into
//! [`ConnectOptions`](crate::resp::ConnectOptions).
//!
//! ```text
//! export RAFT_PASSWORD=...                      # better than --password: not in `ps`
//! raftctl --nodes 10.0.0.1:6380 --tls --cacert certs/ca.crt status
//! raftctl --user app --tls --cacert certs/ca.crt \
//!     --cert certs/client-app.crt --key certs/client-app.key --sni localhost status
//! ```
//!
//! ```
//! use clap::Parser;
//! use tools::client_opts::ClientArgs;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     client: ClientArgs,
//! }
//!
//! let cli = Cli::try_parse_from(["x", "--user", "app", "--password", "pw"]).unwrap();
//! let options = cli.client.connect_options().unwrap();
//! assert_eq!(options.credentials.unwrap().user.as_deref(), Some("app"));
//! assert!(options.tls.is_none());
//! // The password never shows.
//! assert!(!format!("{:?}", cli.client).contains("pw"));
//! ```

use std::fmt;
use std::path::PathBuf;

use clap::Args;
use thiserror::Error;

use crate::resp::{ConnectOptions, Credentials, TlsConfigError, TlsOptions};

/// Credentials and TLS for the connections to the nodes.
#[derive(Clone, Default, Args)]
pub struct ClientArgs {
    /// User to log in as (AUTH USER PASSWORD); without it, --password is the `default`
    /// user's (AUTH PASSWORD).
    #[arg(long, env = "RAFT_USER", global = true, help_heading = "Security")]
    pub user: Option<String>,

    /// Password sent with AUTH after connecting. Prefer the environment variable: a flag
    /// shows in `ps`.
    #[arg(
        long,
        env = "RAFT_PASSWORD",
        hide_env_values = true,
        global = true,
        help_heading = "Security"
    )]
    pub password: Option<String>,

    /// Connect with TLS (to the nodes' TLS client ports, raft-node --client-tls-addr);
    /// needs --cacert.
    #[arg(long, global = true, help_heading = "Security")]
    pub tls: bool,

    /// PEM CA certificate the nodes' TLS certificate must be signed by (e.g. ca.crt from
    /// `raft-node certs --client-port-names ...`).
    #[arg(long, value_name = "FILE", global = true, help_heading = "Security")]
    pub cacert: Option<PathBuf>,

    /// PEM client certificate to present (for nodes run with --client-tls-ca); needs --key.
    #[arg(long, value_name = "FILE", global = true, help_heading = "Security")]
    pub cert: Option<PathBuf>,

    /// PEM private key of --cert.
    #[arg(long, value_name = "FILE", global = true, help_heading = "Security")]
    pub key: Option<PathBuf>,

    /// Name to check the nodes' TLS certificate against (default: the IP address
    /// connected to).
    #[arg(long, value_name = "NAME", global = true, help_heading = "Security")]
    pub sni: Option<String>,
}

impl fmt::Debug for ClientArgs {
    /// Everything but the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientArgs")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .field("cacert", &self.cacert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("sni", &self.sni)
            .finish()
    }
}

/// Why the security flags do not make a way to connect. All are usage errors.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientOptsError {
    /// `--tls` without the CA to check the nodes against.
    #[error(
        "--tls needs --cacert FILE, the CA that signed the nodes' TLS certificate (ca.crt \
         of `raft-node certs --client-port-names ...`)"
    )]
    NoCaCert,
    /// A TLS file or name without `--tls`.
    #[error("{0} applies to TLS connections: add --tls")]
    WithoutTls(&'static str),
    /// `--cert` without `--key`.
    #[error("--cert needs --key, the client certificate's private key")]
    CertWithoutKey,
    /// `--key` without `--cert`.
    #[error("--key needs --cert, the client certificate")]
    KeyWithoutCert,
    /// `--user` without a password.
    #[error("--user needs a password: pass --password or set RAFT_PASSWORD")]
    UserWithoutPassword,
    /// The TLS files or name are unusable.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
}

impl ClientArgs {
    /// Whether TLS or credentials were asked for.
    pub fn is_set(&self) -> bool {
        self.tls || self.credentials().is_some()
    }

    /// The credentials, if a password was given (an empty one counts as none).
    fn credentials(&self) -> Option<Credentials> {
        let password = self.password.as_ref().filter(|p| !p.is_empty())?;
        Some(Credentials {
            user: self.user.clone().filter(|u| !u.is_empty()),
            password: password.clone(),
        })
    }

    /// The connection options these flags ask for; reads the TLS files.
    pub fn connect_options(&self) -> Result<ConnectOptions, ClientOptsError> {
        let credentials = self.credentials();
        if credentials.is_none() && self.user.as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(ClientOptsError::UserWithoutPassword);
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => return Err(ClientOptsError::CertWithoutKey),
            (None, Some(_)) => return Err(ClientOptsError::KeyWithoutCert),
            _ => {}
        }
        let tls = if self.tls {
            let ca = self.cacert.as_deref().ok_or(ClientOptsError::NoCaCert)?;
            let client = self.cert.as_deref().zip(self.key.as_deref());
            Some(TlsOptions::new(ca, client, self.sni.as_deref())?)
        } else {
            // Checked here, not with clap's `requires`: these flags are global (they may
            // follow raftctl's subcommand), and clap does not check `requires` across that.
            let stray = [
                ("--cacert", self.cacert.is_some()),
                ("--cert", self.cert.is_some()),
                ("--key", self.key.is_some()),
                ("--sni", self.sni.is_some()),
            ];
            if let Some((flag, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(ClientOptsError::WithoutTls(flag));
            }
            None
        };
        Ok(ConnectOptions { tls, credentials })
    }
}

/// What to change, for the TLS failures a flag fixes, as a clause to append to the
/// error (empty if none applies). `reason` is rustls's text, as [`crate::resp::ClientError`]
/// carries it.
pub fn tls_hint(reason: &str) -> &'static str {
    if reason.contains("CertificateRequired") {
        "; the node wants a client certificate: pass --cert and --key"
    } else if reason.contains("UnknownIssuer") || reason.contains("BadSignature") {
        "; is --cacert the CA that signed the node's certificate?"
    } else if reason.contains("not valid for name") || reason.contains("NotValidForName") {
        "; pass --sni with a name the certificate holds"
    } else if reason.contains("InvalidContentType") {
        "; is this the node's TLS client port (raft-node --client-tls-addr)?"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use rustls::{AlertDescription, CertificateError, Error as TlsError};

    use super::*;

    #[test]
    fn tls_failures_say_which_flag_helps() {
        let hint = |e: TlsError| tls_hint(&e.to_string());
        assert!(
            hint(TlsError::AlertReceived(
                AlertDescription::CertificateRequired
            ))
            .contains("--cert and --key")
        );
        assert!(
            hint(TlsError::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
            .contains("--cacert")
        );
        assert!(
            hint(TlsError::InvalidCertificate(CertificateError::BadSignature)).contains("--cacert")
        );
        assert!(
            hint(TlsError::InvalidCertificate(
                CertificateError::NotValidForName
            ))
            .contains("--sni")
        );
        assert!(
            hint(TlsError::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))
            .contains("TLS client port")
        );
        assert_eq!(hint(TlsError::DecryptError), "");
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
    }

    fn options(args: &[&str]) -> Result<ConnectOptions, ClientOptsError> {
        let cli = Cli::try_parse_from([&["x"][..], args].concat()).unwrap();
        cli.client.connect_options()
    }

    #[test]
    fn plain_without_flags() {
        let o = options(&[]).unwrap();
        assert!(o.tls.is_none() && o.credentials.is_none());
        let o = options(&["--password", "pw"]).unwrap();
        let c = o.credentials.unwrap();
        assert_eq!((c.user, c.password.as_str()), (None, "pw"));
        assert!(options(&["--password", ""]).unwrap().credentials.is_none());
    }

    #[test]
    fn inconsistent_flags_are_refused_clearly() {
        let err = |args: &[&str]| options(args).unwrap_err().to_string();
        assert!(err(&["--tls"]).starts_with("--tls needs --cacert FILE"));
        assert_eq!(
            err(&["--cacert", "ca.crt"]),
            "--cacert applies to TLS connections: add --tls"
        );
        assert_eq!(
            err(&["--tls", "--cacert", "ca.crt", "--cert", "c.crt"]),
            "--cert needs --key, the client certificate's private key"
        );
        assert_eq!(
            err(&["--tls", "--cacert", "ca.crt", "--key", "c.key"]),
            "--key needs --cert, the client certificate"
        );
        assert_eq!(
            err(&["--user", "app"]),
            "--user needs a password: pass --password or set RAFT_PASSWORD"
        );
        let missing = err(&["--tls", "--cacert", "/nonexistent/ca.crt"]);
        assert!(
            missing.starts_with("/nonexistent/ca.crt: cannot read the CA certificate: "),
            "{missing}"
        );
    }

    #[test]
    fn the_password_is_never_shown() {
        let cli = Cli::try_parse_from(["x", "--user", "u", "--password", "s3cret"]).unwrap();
        assert!(!format!("{cli:?}").contains("s3cret"));
        let o = cli.client.connect_options().unwrap();
        assert!(!format!("{o:?}").contains("s3cret"));
    }
}
