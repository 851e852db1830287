//! Minimal wire-protocol clients for the test bed's services, enough to prove they answer and to
//! seed them from tests (a list length in Redis, a row count in PostgreSQL, ...) without pulling
//! a full client crate into every test build. All of them only dial loopback addresses.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use reqwest::Url;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// `host:port` of a service URL, refusing anything that is not loopback (network rule).
pub fn loopback_addr(url: &str) -> Result<String> {
    let u = Url::parse(url).with_context(|| format!("parsing {url}"))?;
    let host = u.host_str().context("URL without host")?;
    ensure!(
        matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1"),
        "refusing non-loopback address {host} (network rule)"
    );
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    let port = u.port_or_known_default().context("URL without port")?;
    Ok(format!("{host}:{port}"))
}

async fn connect(url: &str) -> Result<TcpStream> {
    let addr = loopback_addr(url)?;
    let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(&addr))
        .await
        .with_context(|| format!("connecting to {addr}: timeout"))?
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

// ------------------------------------------------------------------------------------------------
// Redis (RESP2)
// ------------------------------------------------------------------------------------------------

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespValue {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<RespValue>>),
}

/// Sends one command (`["LPUSH", "jobs", "a"]`) to Redis at `redis://127.0.0.1:PORT` and returns
/// its reply. A Redis error reply is returned as [`RespValue::Error`], not as `Err`.
pub async fn redis_command(url: &str, args: &[&str]) -> Result<RespValue> {
    let mut stream = BufReader::new(connect(url).await?);
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.get_mut().write_all(&req).await?;
        read_resp(&mut stream).await
    })
    .await
    .context("redis: timeout")?
}

async fn read_resp(r: &mut BufReader<TcpStream>) -> Result<RespValue> {
    let mut line = String::new();
    r.read_line(&mut line).await?;
    ensure!(line.ends_with("\r\n"), "redis: truncated reply {line:?}");
    let (kind, rest) = line.trim_end().split_at(1);
    Ok(match kind {
        "+" => RespValue::Simple(rest.to_owned()),
        "-" => RespValue::Error(rest.to_owned()),
        ":" => RespValue::Integer(rest.parse()?),
        "$" => {
            let n: i64 = rest.parse()?;
            if n < 0 {
                RespValue::Bulk(None)
            } else {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf).await?;
                buf.truncate(n as usize);
                RespValue::Bulk(Some(buf))
            }
        }
        "*" => {
            let n: i64 = rest.parse()?;
            if n < 0 {
                RespValue::Array(None)
            } else {
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(Box::pin(read_resp(r)).await?);
                }
                RespValue::Array(Some(items))
            }
        }
        _ => bail!("redis: unexpected reply {line:?}"),
    })
}

// ------------------------------------------------------------------------------------------------
// PostgreSQL (frontend/backend protocol 3.0, simple query, trust authentication)
// ------------------------------------------------------------------------------------------------

/// Runs `sql` with the simple-query protocol against `postgres://USER@127.0.0.1:PORT/DB` (the test
/// bed uses trust authentication) and returns the rows of the last result set as text.
pub async fn postgres_query(url: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let u = Url::parse(url)?;
    let user = if u.username().is_empty() {
        "postgres"
    } else {
        u.username()
    };
    let db = u.path().trim_start_matches('/');
    let db = if db.is_empty() { user } else { db };
    let mut stream = BufReader::new(connect(url).await?);
    tokio::time::timeout(IO_TIMEOUT, async {
        let mut body = 196608i32.to_be_bytes().to_vec(); // protocol 3.0
        for s in ["user", user, "database", db, ""] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        let mut startup = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        startup.extend(body);
        stream.get_mut().write_all(&startup).await?;
        // Authentication and parameters until ReadyForQuery.
        loop {
            let (tag, msg) = pg_read(&mut stream).await?;
            match tag {
                b'R' => ensure!(
                    msg.get(..4) == Some(&[0, 0, 0, 0][..]),
                    "postgres: server wants a password (expected trust)"
                ),
                b'E' => bail!("postgres: {}", pg_error(&msg)),
                b'Z' => break,
                _ => {} // ParameterStatus, BackendKeyData, NoticeResponse
            }
        }
        let mut q = vec![b'Q'];
        q.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
        q.extend_from_slice(sql.as_bytes());
        q.push(0);
        stream.get_mut().write_all(&q).await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, msg) = pg_read(&mut stream).await?;
            match tag {
                b'T' => rows.clear(),
                b'D' => rows.push(pg_data_row(&msg)?),
                b'E' => error = Some(pg_error(&msg)),
                b'Z' => break,
                _ => {} // CommandComplete, EmptyQueryResponse, NoticeResponse
            }
        }
        stream.get_mut().write_all(&[b'X', 0, 0, 0, 4]).await?;
        match error {
            Some(e) => Err(anyhow!("postgres: {e}")),
            None => Ok(rows),
        }
    })
    .await
    .context("postgres: timeout")?
}

async fn pg_read(r: &mut BufReader<TcpStream>) -> Result<(u8, Vec<u8>)> {
    let tag = r.read_u8().await?;
    let len = r.read_i32().await?;
    ensure!(
        (4..1 << 30).contains(&len),
        "postgres: bad message length {len}"
    );
    let mut msg = vec![0; len as usize - 4];
    r.read_exact(&mut msg).await?;
    Ok((tag, msg))
}

fn pg_data_row(msg: &[u8]) -> Result<Vec<Option<String>>> {
    let short = || anyhow!("postgres: short DataRow");
    let n = i16::from_be_bytes(msg.get(..2).ok_or_else(short)?.try_into()?);
    let mut at = 2;
    let mut row = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let len = i32::from_be_bytes(msg.get(at..at + 4).ok_or_else(short)?.try_into()?);
        at += 4;
        if len < 0 {
            row.push(None);
        } else {
            let v = msg.get(at..at + len as usize).ok_or_else(short)?;
            row.push(Some(String::from_utf8_lossy(v).into_owned()));
            at += len as usize;
        }
    }
    Ok(row)
}

/// The `M` (message) field of an ErrorResponse.
fn pg_error(msg: &[u8]) -> String {
    msg.split(|b| *b == 0)
        .find_map(|f| f.strip_prefix(b"M"))
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_else(|| "unknown error".to_owned())
}

// ------------------------------------------------------------------------------------------------
// AMQP 0-9-1 (RabbitMQ): connection handshake only
// ------------------------------------------------------------------------------------------------

/// What the broker said during the handshake.
#[derive(Clone, Debug)]
pub struct AmqpHello {
    /// `(major, minor)` from Connection.Start, `(0, 9)` for AMQP 0-9-1.
    pub version: (u8, u8),
    /// `product` server property, e.g. `RabbitMQ`.
    pub product: Option<String>,
    /// `version` server property, e.g. `3.10.8`.
    pub server_version: Option<String>,
    /// SASL mechanisms offered, e.g. `PLAIN AMQPLAIN`.
    pub mechanisms: String,
}

/// Opens and closes an AMQP connection to `amqp://USER:PASS@127.0.0.1:PORT/VHOST` (Start,
/// Start-Ok with PLAIN, Tune, Tune-Ok, Open, Open-Ok, Close, Close-Ok): proves the broker runs and
/// accepts the credentials and virtual host.
pub async fn amqp_handshake(url: &str) -> Result<AmqpHello> {
    let u = Url::parse(url)?;
    let user = if u.username().is_empty() {
        "guest"
    } else {
        u.username()
    };
    let pass = u.password().unwrap_or("guest");
    let vhost = match u.path().trim_start_matches('/') {
        "" | "%2f" | "%2F" => "/".to_owned(),
        v => v.to_owned(),
    };
    let mut s = BufReader::new(connect(url).await?);
    tokio::time::timeout(IO_TIMEOUT, async {
        s.get_mut().write_all(b"AMQP\x00\x00\x09\x01").await?;
        let start = amqp_expect(&mut s, (10, 10), "Connection.Start").await?;
        let hello = parse_start(&start)?;

        let mut start_ok = method(10, 11);
        start_ok.extend_from_slice(&0u32.to_be_bytes()); // client-properties: empty table
        shortstr(&mut start_ok, "PLAIN");
        longstr(&mut start_ok, format!("\0{user}\0{pass}").as_bytes());
        shortstr(&mut start_ok, "en_US");
        amqp_send(s.get_mut(), &start_ok).await?;

        let tune = amqp_expect(&mut s, (10, 30), "Connection.Tune (credentials refused?)").await?;
        let mut tune_ok = method(10, 31);
        tune_ok.extend_from_slice(tune.get(4..12).context("short Connection.Tune")?); // echo limits
        amqp_send(s.get_mut(), &tune_ok).await?;

        let mut open = method(10, 40);
        shortstr(&mut open, &vhost);
        shortstr(&mut open, "");
        open.push(0);
        amqp_send(s.get_mut(), &open).await?;
        amqp_expect(&mut s, (10, 41), "Connection.Open-Ok (vhost refused?)").await?;

        let mut close = method(10, 50);
        close.extend_from_slice(&200u16.to_be_bytes());
        shortstr(&mut close, "bye");
        close.extend_from_slice(&[0, 0, 0, 0]);
        amqp_send(s.get_mut(), &close).await?;
        amqp_expect(&mut s, (10, 51), "Connection.Close-Ok").await?;
        Ok(hello)
    })
    .await
    .context("amqp: timeout")?
}

fn method(class: u16, id: u16) -> Vec<u8> {
    let mut v = class.to_be_bytes().to_vec();
    v.extend_from_slice(&id.to_be_bytes());
    v
}

fn shortstr(buf: &mut Vec<u8>, s: &str) {
    buf.push(s.len() as u8);
    buf.extend_from_slice(s.as_bytes());
}

fn longstr(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s);
}

async fn amqp_send(w: &mut TcpStream, payload: &[u8]) -> Result<()> {
    let mut frame = vec![1, 0, 0]; // method frame, channel 0
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame.push(0xCE);
    w.write_all(&frame).await?;
    Ok(())
}

/// Reads method frames on channel 0 until one arrives; fails unless it is `want`.
async fn amqp_expect(
    r: &mut BufReader<TcpStream>,
    want: (u16, u16),
    what: &str,
) -> Result<Vec<u8>> {
    loop {
        let mut head = [0u8; 7];
        r.read_exact(&mut head)
            .await
            .with_context(|| format!("amqp: connection closed waiting for {what}"))?;
        let size = u32::from_be_bytes(head[3..7].try_into()?) as usize;
        ensure!(size < 1 << 20, "amqp: frame too large");
        let mut payload = vec![0; size + 1];
        r.read_exact(&mut payload).await?;
        ensure!(payload.pop() == Some(0xCE), "amqp: bad frame end");
        if head[0] != 1 {
            continue; // heartbeat
        }
        let got = (
            u16::from_be_bytes(payload[0..2].try_into()?),
            u16::from_be_bytes(payload[2..4].try_into()?),
        );
        if got == (10, 50) {
            let code = payload
                .get(4..6)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .unwrap_or(0);
            let text = payload
                .get(7..7 + *payload.get(6).unwrap_or(&0) as usize)
                .map(String::from_utf8_lossy);
            bail!(
                "amqp: broker closed the connection waiting for {what}: {code} {}",
                text.unwrap_or_default()
            );
        }
        ensure!(
            got == want,
            "amqp: expected {what} {want:?}, got method {got:?}"
        );
        return Ok(payload);
    }
}

fn parse_start(p: &[u8]) -> Result<AmqpHello> {
    let version = (
        *p.get(4).context("short Start")?,
        *p.get(5).context("short Start")?,
    );
    let tlen = u32::from_be_bytes(p.get(6..10).context("short Start")?.try_into()?) as usize;
    let table = p.get(10..10 + tlen).context("short Start table")?;
    let mech_at = 10 + tlen;
    let mlen = u32::from_be_bytes(
        p.get(mech_at..mech_at + 4)
            .context("short Start")?
            .try_into()?,
    ) as usize;
    let mechanisms = String::from_utf8_lossy(
        p.get(mech_at + 4..mech_at + 4 + mlen)
            .context("short Start")?,
    )
    .into_owned();
    Ok(AmqpHello {
        version,
        product: table_string(table, "product"),
        server_version: table_string(table, "version"),
        mechanisms,
    })
}

/// A long-string (`S`) entry at the top level of an AMQP field table.
fn table_string(mut t: &[u8], key: &str) -> Option<String> {
    while let Some((&klen, rest)) = t.split_first() {
        let k = rest.get(..klen as usize)?;
        let rest = &rest[klen as usize..];
        let (&ty, rest) = rest.split_first()?;
        let len = match ty {
            b'S' | b'F' | b'A' | b'x' => {
                4 + u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize
            }
            b't' | b'b' | b'B' => 1,
            b's' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'l' | b'L' | b'd' | b'T' => 8,
            b'D' => 5,
            b'V' => 0,
            _ => return None,
        };
        let value = rest.get(..len)?;
        if k == key.as_bytes() && ty == b'S' {
            return Some(String::from_utf8_lossy(&value[4..]).into_owned());
        }
        t = &rest[len..];
    }
    None
}

// ------------------------------------------------------------------------------------------------
// moto (AWS APIs)
// ------------------------------------------------------------------------------------------------

/// Calls an EC2 query-API action on moto, e.g. `("DescribeRegions", &[])`, and returns the XML.
/// moto routes by the credential scope of the Authorization header and does not check signatures,
/// so a syntactically valid SigV4 header with the test credentials is enough here; real code
/// under test uses the AWS SDK with `AWS_ENDPOINT_URL`.
pub async fn moto_ec2(moto_url: &str, action: &str, params: &[(&str, &str)]) -> Result<String> {
    loopback_addr(moto_url)?;
    let mut form = format!("Action={action}&Version=2016-11-15");
    for (k, v) in params {
        form.push('&');
        form.push_str(&url_encode(k));
        form.push('=');
        form.push_str(&url_encode(v));
    }
    let resp = crate::http_client()
        .post(moto_url)
        .header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
        .header("X-Amz-Date", "20260101T000000Z")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
        )
        .body(form)
        .send()
        .await
        .context("moto: request failed")?;
    let status = resp.status();
    let text = resp.text().await?;
    ensure!(
        status.is_success(),
        "moto: {action} returned {status}: {text}"
    );
    Ok(text)
}

/// moto's default subnets (one per zone of us-east-1): zone → subnet id.
pub async fn moto_default_subnets(
    moto_url: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    let xml = moto_ec2(
        moto_url,
        "DescribeSubnets",
        &[
            ("Filter.1.Name", "default-for-az"),
            ("Filter.1.Value.1", "true"),
        ],
    )
    .await?;
    let field = |item: &str, tag: &str| -> Option<String> {
        let open = format!("<{tag}>");
        let start = item.find(&open)? + open.len();
        let end = item[start..].find(&format!("</{tag}>"))? + start;
        Some(item[start..end].to_string())
    };
    // The top-level <item>s of <subnetSet>: tags and CIDR associations nest items of their own,
    // which have no subnetId or availabilityZone.
    let mut items = vec![];
    let (mut depth, mut start, mut i) = (0usize, 0usize, 0usize);
    while i < xml.len() {
        if xml[i..].starts_with("<item>") {
            if depth == 0 {
                start = i;
            }
            depth += 1;
            i += "<item>".len();
        } else if xml[i..].starts_with("</item>") {
            depth = depth.saturating_sub(1);
            i += "</item>".len();
            if depth == 0 {
                items.push(&xml[start..i]);
            }
        } else {
            i += xml[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for item in items {
        if let (Some(zone), Some(id)) = (field(item, "availabilityZone"), field(item, "subnetId")) {
            out.entry(zone).or_insert(id);
        }
    }
    ensure!(!out.is_empty(), "moto: no default subnet in {xml}");
    Ok(out)
}

pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses() {
        assert_eq!(
            loopback_addr("redis://127.0.0.1:26379").unwrap(),
            "127.0.0.1:26379"
        );
        assert_eq!(
            loopback_addr("postgres://postgres@localhost:25432/postgres").unwrap(),
            "127.0.0.1:25432"
        );
        assert_eq!(loopback_addr("http://127.0.0.1").unwrap(), "127.0.0.1:80");
        assert!(loopback_addr("redis://10.0.0.1:6379").is_err());
        assert!(loopback_addr("http://example.com:80").is_err());
    }

    #[test]
    fn amqp_table_lookup() {
        let mut t = Vec::new();
        shortstr(&mut t, "capabilities");
        t.push(b'F');
        t.extend_from_slice(&3u32.to_be_bytes());
        t.extend_from_slice(&[1, b'x', b'V']);
        shortstr(&mut t, "product");
        t.push(b'S');
        longstr(&mut t, b"RabbitMQ");
        assert_eq!(table_string(&t, "product").as_deref(), Some("RabbitMQ"));
        assert_eq!(table_string(&t, "version"), None);
    }

    #[test]
    fn pg_rows_and_errors() {
        let mut row = 2i16.to_be_bytes().to_vec();
        row.extend_from_slice(&1i32.to_be_bytes());
        row.push(b'1');
        row.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(pg_data_row(&row).unwrap(), vec![Some("1".to_owned()), None]);
        assert_eq!(
            pg_error(b"SERROR\0C42P01\0Mrelation \"x\" does not exist\0\0"),
            "relation \"x\" does not exist"
        );
    }
}
