//! Real mail servers for the email tests, each started by the test in a throw-away directory on a
//! free port and stopped when dropped: Debian's Dovecot as the IMAP mailbox (a passwd-file user,
//! maildir storage) and Python's aiosmtpd as the SMTP server, which saves every mail it accepts
//! (and refuses recipients starting with `refuse` with a 550).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The mailbox user and password.
pub const IMAP_USER: &str = "suporte@omniroute.example";
pub const IMAP_PASSWORD: &str = "imap-P@ss%1";

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("local address").port()
}

fn scratch(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omniroute-{kind}-{}", schema::MessageId::new()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

fn wait_for_port(port: u16, child: &mut Child, log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}): {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port}: {}", std::fs::read_to_string(log).unwrap_or_default());
}

fn stop(child: &mut Child) {
    // SIGTERM first: Dovecot's master then stops its own children.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn id(args: &[&str]) -> String {
    let out = Command::new("id").args(args).output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A running Dovecot IMAP server with one user and an empty INBOX.
pub struct Dovecot {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl Dovecot {
    /// Starts Dovecot (`dovecot-imapd`; `scripts/deps.sh test` installs it).
    pub fn start() -> Dovecot {
        let dir = scratch("dovecot");
        let mail = dir.join("mail");
        std::fs::create_dir_all(dir.join("run")).unwrap();
        std::fs::create_dir_all(&mail).unwrap();
        std::fs::write(dir.join("passwd"), format!("{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}::::::\n")).unwrap();
        // As root, Dovecot's own unprivileged users run the login and mail processes (it refuses
        // root for both); otherwise everything runs as the current user.
        let root = id(&["-u"]) == "0";
        let (internal, login, uid, gid) = if root {
            ("dovecot".to_owned(), "dovenull".to_owned(), id(&["-u", "dovecot"]), id(&["-g", "dovecot"]))
        } else {
            (id(&["-un"]), id(&["-un"]), id(&["-u"]), id(&["-g"]))
        };
        if root {
            std::os::unix::fs::chown(&mail, uid.parse().ok(), gid.parse().ok()).expect("give the maildir to dovecot");
        }
        let port = free_port();
        let d = dir.display();
        let config = format!(
            "base_dir = {d}/run\nstate_dir = {d}/run\nlog_path = {d}/dovecot.log\n\
             protocols = imap\nlisten = 127.0.0.1\nssl = no\ndisable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             default_internal_user = {internal}\ndefault_internal_group = {internal}\ndefault_login_user = {login}\n\
             first_valid_uid = {uid}\nfirst_valid_gid = {gid}\n\
             mail_location = maildir:{d}/mail/%n\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={d}/mail/%n\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n\
               inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    port = 0\n  }}\n}}\n"
        );
        std::fs::write(dir.join("dovecot.conf"), config).unwrap();
        let binary = ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("Dovecot is not installed: run scripts/deps.sh test (apt package dovecot-imapd)");
        let log = dir.join("dovecot.log");
        let out = std::fs::File::create(dir.join("stdout.log")).unwrap();
        let mut child = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(dir.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start dovecot");
        wait_for_port(port, &mut child, &log, "dovecot");
        Dovecot { child, dir, port }
    }

    /// The service's `imap_url` for the INBOX (user and password percent-encoded).
    pub fn url(&self) -> String {
        let enc = |s: &str| s.replace('%', "%25").replace('@', "%40").replace(':', "%3A");
        format!("imap://{}:{}@127.0.0.1:{}/INBOX", enc(IMAP_USER), enc(IMAP_PASSWORD), self.port)
    }

    /// Delivers a mail into the INBOX with IMAP APPEND.
    pub async fn append(&self, raw: &[u8]) {
        let log = || std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.expect("connect to dovecot");
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.expect("greeting").expect("a greeting");
        let mut session = client
            .login(IMAP_USER, IMAP_PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("log in: {e}\n{}", log()));
        session.append("INBOX", None, None, raw).await.unwrap_or_else(|e| panic!("append: {e}\n{}", log()));
        session.logout().await.unwrap_or_else(|e| panic!("log out: {e}\n{}", log()));
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        stop(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The SMTP server: an aiosmtpd handler that saves each accepted mail as `NNNN.eml` with its
/// envelope in `NNNN.json`, and refuses recipients starting with `refuse` (550).
const SMTP_SINK: &str = r#"
import asyncio, json, os, sys
from aiosmtpd.smtp import SMTP

port, out = int(sys.argv[1]), sys.argv[2]

class Sink:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith('refuse'):
            return '550 5.1.1 <%s>: Recipient address rejected: mailbox unavailable' % address
        envelope.rcpt_tos.append(address)
        return '250 2.1.5 Ok'

    async def handle_DATA(self, server, session, envelope):
        n = len([f for f in os.listdir(out) if f.endswith('.json')])
        base = os.path.join(out, '%04d' % n)
        with open(base + '.tmp', 'wb') as f:
            f.write(envelope.original_content)
        os.rename(base + '.tmp', base + '.eml')
        with open(base + '.tmp', 'w') as f:
            json.dump({'mail_from': envelope.mail_from, 'rcpt_tos': envelope.rcpt_tos}, f)
        os.rename(base + '.tmp', base + '.json')
        return '250 2.0.0 Ok: queued'

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Sink(), hostname='sink.test'), '127.0.0.1', port)
    await server.serve_forever()

asyncio.run(main())
"#;

/// A running SMTP server that keeps what it receives.
pub struct SmtpSink {
    child: Child,
    dir: PathBuf,
}

/// One mail the SMTP server accepted.
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub raw: Vec<u8>,
}

impl SmtpSink {
    /// Starts aiosmtpd on `port` (`python3-aiosmtpd`; `scripts/deps.sh test` installs it).
    pub fn start(port: u16) -> SmtpSink {
        let dir = scratch("smtp");
        std::fs::create_dir_all(dir.join("mail")).unwrap();
        let script = dir.join("sink.py");
        std::fs::File::create(&script).unwrap().write_all(SMTP_SINK.as_bytes()).unwrap();
        let log = dir.join("sink.log");
        let out = std::fs::File::create(&log).unwrap();
        // Debian's python3 (where python3-aiosmtpd is), whatever else is first on PATH.
        let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
        let mut child = Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .arg(dir.join("mail"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start aiosmtpd (apt package python3-aiosmtpd)");
        wait_for_port(port, &mut child, &log, "aiosmtpd");
        SmtpSink { child, dir }
    }

    /// Every mail received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.join("mail"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|json| {
                let envelope: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
                Received {
                    mail_from: envelope["mail_from"].as_str().unwrap_or("").to_owned(),
                    rcpt_tos: envelope["rcpt_tos"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default(),
                    raw: std::fs::read(json.with_extension("eml")).unwrap(),
                }
            })
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        stop(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
