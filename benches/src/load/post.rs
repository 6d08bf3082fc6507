//! The customers' webhooks over a lean HTTP/1.1 client: a pool of keep-alive connections, each
//! request written and its answer read by the task that sends it. reqwest (hyper) hands every
//! request to a connection task over a channel and back, which was a quarter of the harness's
//! CPU at 10,000 webhooks a second — CPU taken from the server under test on a shared machine.
//! Only what the server's webhook answers use is read: a status line, `Content-Length` or
//! chunked bodies, `Connection: close`.

use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server's answer: its status and body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// POSTs to one server over pooled connections.
pub struct Poster {
    /// `host:port`.
    authority: String,
    idle: Mutex<Vec<TcpStream>>,
}

/// Longest answer head read.
const MAX_HEAD: usize = 16 * 1024;

impl Poster {
    /// A client of `base` (`http://host:port`).
    pub fn new(base: &str) -> Self {
        let authority = base.trim_start_matches("http://").trim_end_matches('/').to_owned();
        Self { authority, idle: Mutex::new(Vec::new()) }
    }

    /// POSTs a JSON `body` to `path` with `headers`. A pooled connection the server closed while
    /// idle is replaced once at no cost to the caller, as any keep-alive client does.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Result<Answer, String> {
        let mut request =
            format!("POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n", self.authority);
        for (name, value) in headers {
            request.push_str(name);
            request.push_str(": ");
            request.push_str(value);
            request.push_str("\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        request.push_str(body);
        loop {
            let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let reused = pooled.is_some();
            let mut stream = match pooled {
                Some(s) => s,
                None => {
                    let s = TcpStream::connect(&self.authority).await.map_err(|e| format!("connect: {e}"))?;
                    s.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
                    s
                }
            };
            match exchange(&mut stream, request.as_bytes()).await {
                Ok((answer, keep)) => {
                    if keep && let Ok(mut idle) = self.idle.lock() {
                        idle.push(stream);
                    }
                    return Ok(answer);
                }
                // Closed under us before any answer: a stale pooled connection.
                Err(Exchange::Stale) if reused => continue,
                Err(Exchange::Stale) => return Err("connection closed before an answer".into()),
                Err(Exchange::Failed(e)) => return Err(e),
            }
        }
    }
}

enum Exchange {
    /// The connection ended before the first byte of an answer.
    Stale,
    Failed(String),
}

/// Writes `request` and reads one answer; whether the connection may be used again.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Result<(Answer, bool), Exchange> {
    if stream.write_all(request).await.is_err() {
        return Err(Exchange::Stale);
    }
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(Exchange::Failed("answer head too long".into()));
        }
        match read_more(stream, &mut buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return Err(Exchange::Stale),
            Ok(0) => return Err(Exchange::Failed("connection closed in the answer's head".into())),
            Ok(_) => {}
            Err(e) => return Err(Exchange::Failed(format!("reading: {e}"))),
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| Exchange::Failed("answer head not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| Exchange::Failed(format!("no status line in {head:?}")))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let mut body = buf.split_off(head_end);
    if chunked {
        while !body.ends_with(b"0\r\n\r\n") {
            if read_more(stream, &mut body).await.map_err(|e| Exchange::Failed(format!("reading: {e}")))? == 0 {
                return Err(Exchange::Failed("connection closed in a chunked body".into()));
            }
        }
        return Ok((Answer { status, body: dechunk(&body) }, !close));
    }
    let Some(length) = length else {
        // No length: the body runs to the end of the connection.
        while read_more(stream, &mut body).await.map_err(|e| Exchange::Failed(format!("reading: {e}")))? > 0 {}
        return Ok((Answer { status, body }, false));
    };
    while body.len() < length {
        if read_more(stream, &mut body).await.map_err(|e| Exchange::Failed(format!("reading: {e}")))? == 0 {
            return Err(Exchange::Failed("connection closed in the body".into()));
        }
    }
    body.truncate(length);
    Ok((Answer { status, body }, !close))
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// The data of a chunked body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..i])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || raw.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[i + 2..i + 2 + size]);
        raw = &raw[(i + 4 + size).min(raw.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_is_joined() {
        assert_eq!(dechunk(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"), b"Wikipedia");
        assert_eq!(dechunk(b"0\r\n\r\n"), b"");
    }

    /// A server that answers `sig:body` (401, chunked, for `X-Sig: bad`) and closes every
    /// connection after its second request, as a server's keep-alive timeout does.
    async fn server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        actix_rt::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                actix_rt::spawn(async move {
                    for _ in 0..2 {
                        let mut buf = Vec::new();
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            if read_more(&mut s, &mut buf).await.unwrap_or(0) == 0 {
                                return;
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                        let field = |n: &str| {
                            head.lines()
                                .find_map(|l| l.strip_prefix(n).map(|v| v.trim().to_owned()))
                                .unwrap_or_default()
                        };
                        let length: usize = field("Content-Length:").parse().unwrap();
                        while buf.len() < head_end + length {
                            read_more(&mut s, &mut buf).await.unwrap();
                        }
                        let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
                        let answer = match field("X-Sig:").as_str() {
                            "bad" => "HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n\
                                      5\r\nunaut\r\n7\r\nhorized\r\n0\r\n\r\n"
                                .to_owned(),
                            sig => {
                                let text = format!("{sig}:{body}");
                                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}", text.len())
                            }
                        };
                        s.write_all(answer.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        base
    }

    #[actix_rt::test]
    async fn answers_are_read_and_connections_reused_and_replaced_when_closed() {
        let poster = Poster::new(&server().await);
        let a = poster.post("/echo", &[("X-Sig", "s1")], r#"{"n":1}"#).await.unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, br#"s1:{"n":1}"#.as_slice()));
        assert_eq!(poster.idle.lock().unwrap().len(), 1, "kept for the next request");
        let refused = poster.post("/echo", &[("X-Sig", "bad")], "{}").await.unwrap();
        assert_eq!((refused.status, refused.body.as_slice()), (401, b"unauthorized".as_slice()));
        // That connection is closed by now: the next post replaces it without an error.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let c = poster.post("/echo", &[("X-Sig", "s3")], "{}").await.unwrap();
        assert_eq!((c.status, c.body.as_slice()), (200, b"s3:{}".as_slice()));
    }
}
