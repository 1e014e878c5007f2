//! A tiny authoritative DNS server for the tests: UDP on a loopback port 0, answering
//! TXT queries from a table the test fills in, so that the worker's email-domain
//! verification goes through real DNS packets (RFC 1035 §4) and its real resolver.
//!
//! It knows one record type. A name in the table answers its TXT values (TTL 0, so no
//! resolver keeps them); any other name, or any other type, answers `NXDOMAIN` or an
//! empty answer. Malformed packets are dropped, as a server would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// The TXT records type code.
const TXT: u16 = 16;
/// The Internet class.
const IN: u16 = 1;

/// The server; stops when dropped.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    records: Arc<Mutex<HashMap<String, Vec<String>>>>,
    task: JoinHandle<()>,
}

impl DnsServer {
    /// Serves on `127.0.0.1:0`.
    pub async fn start() -> anyhow::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let records = Arc::new(Mutex::new(HashMap::new()));
        let table = Arc::clone(&records);
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let answer = {
                    let table = table.lock().expect("the table is never poisoned");
                    respond(&buf[..n], &table)
                };
                if let Some(answer) = answer {
                    let _ = socket.send_to(&answer, from).await;
                }
            }
        });
        Ok(Self {
            addr,
            records,
            task,
        })
    }

    /// Where it listens: the worker's `dns_server`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publishes a TXT record (`value`) at `name` (case-insensitive, no final dot),
    /// beside the ones already there.
    pub fn publish_txt(&self, name: &str, value: &str) {
        self.records
            .lock()
            .expect("the table is never poisoned")
            .entry(name.trim_end_matches('.').to_ascii_lowercase())
            .or_default()
            .push(value.to_owned());
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The answer to the query in `packet`, or `None` for a packet that is not one.
fn respond(packet: &[u8], table: &HashMap<String, Vec<String>>) -> Option<Vec<u8>> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return None; // too short, or a response
    }
    let questions = u16::from_be_bytes([packet[4], packet[5]]);
    if questions != 1 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*packet.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // no compression in a question
        }
        labels.push(String::from_utf8_lossy(packet.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]);
    let question_end = at + 4;
    packet.get(at + 2..question_end)?;
    let values = table.get(&labels.join("."));
    let answers: &[String] = match (values, qtype) {
        (Some(v), TXT) => v,
        _ => &[],
    };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&packet[0..2]); // the query's id
    // QR, the query's opcode and RD, AA; RA; NOERROR, or NXDOMAIN for an unknown name.
    out.push(0x80 | (packet[2] & 0x79) | 0x04);
    out.push(0x80 | if values.is_none() { 3 } else { 0 });
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // no authority, no additional records
    out.extend_from_slice(&packet[12..question_end]);
    for value in answers {
        let mut rdata = Vec::new();
        // One value as character-strings of at most 255 bytes each.
        for chunk in value.as_bytes().chunks(255) {
            rdata.push(chunk.len() as u8);
            rdata.extend_from_slice(chunk);
        }
        out.extend_from_slice(&[0xc0, 12]); // the question's name
        out.extend_from_slice(&TXT.to_be_bytes());
        out.extend_from_slice(&IN.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // TTL
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TXT query for `name` with id 0x1234 and RD set.
    fn query(name: &str) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 16, 0, 1]);
        q
    }

    #[test]
    fn it_answers_a_txt_query_from_the_table() {
        let mut table = HashMap::new();
        table.insert("_c.acme.com".to_owned(), vec!["v=1".to_owned()]);
        let q = query("_c.ACME.com");
        let a = respond(&q, &table).unwrap();
        assert_eq!(&a[0..2], &[0x12, 0x34]);
        assert_eq!(a[2] & 0x80, 0x80, "a response");
        assert_eq!(a[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer");
        assert!(a.ends_with(&[0, 4, 3, b'v', b'=', b'1']));
        let missing = respond(&query("other.acme.com"), &table).unwrap();
        assert_eq!(missing[3] & 0x0f, 3, "NXDOMAIN");
        assert!(respond(&[0; 5], &table).is_none());
    }
}
