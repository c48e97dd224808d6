//! What client and server connections share: our control stream, the peer's control and
//! QPACK streams, GOAWAY, and HTTP Datagrams routed to streams by quarter stream id
//! (RFC 9297 §2.1).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use burrow_http_core::TunnelDatagrams;
use burrow_transport::{Error, ErrorKind};
use bytes::{BufMut, Bytes, BytesMut};
use quinn::VarInt;
use tokio::sync::{mpsc, watch};

use burrow_http_core::driver;

use crate::proto::conn::{no_settings, ConnEvent, ConnState, Side, UniVerdict};
use crate::proto::error::{Code, H3Error};
use crate::proto::frame::{self, FrameType};
use crate::proto::settings::Settings;
use crate::proto::stream::uni;
use crate::proto::varint;

/// Datagrams queued per stream before new ones are dropped.
pub const DATAGRAM_QUEUE: usize = 256;

type Routes = Arc<Mutex<HashMap<u64, mpsc::Sender<Bytes>>>>;

/// One HTTP/3 connection's shared state: the sans-I/O [`ConnState`] and what it decided.
pub(crate) struct Shared {
    pub conn: quinn::Connection,
    settings: watch::Receiver<Option<Result<Settings, Error>>>,
    settings_tx: watch::Sender<Option<Result<Settings, Error>>>,
    /// The peer's GOAWAY id (`u64::MAX` while none), mirrored from the state.
    pub goaway: AtomicU64,
    state: Mutex<ConnState>,
    routes: Routes,
    _control: tokio::sync::Mutex<Option<quinn::SendStream>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn close(conn: &quinn::Connection, e: &H3Error) {
    conn.close(
        VarInt::from_u64(e.code.0).unwrap_or(VarInt::from_u32(0x101)),
        e.reason.as_bytes(),
    );
}

/// Maps a quinn connection error to burrow's.
pub(crate) fn conn_error(e: quinn::ConnectionError, what: &'static str) -> Error {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => {
            let code = c.error_code.into_inner();
            let name = Code(code).rfc_name();
            let kind = if code == Code::NO_ERROR.0 {
                ErrorKind::Closed
            } else {
                ErrorKind::Protocol
            };
            Error::peer(
                kind,
                format!("HTTP/3: {what}: peer closed the connection with {name} (0x{code:x})"),
            )
            .with_code(Code(code))
        }
        quinn::ConnectionError::TimedOut => {
            Error::peer_timeout(format!("HTTP/3: {what}: QUIC idle timeout"))
        }
        quinn::ConnectionError::LocallyClosed => {
            Error::closed(format!("HTTP/3: {what}: connection closed"))
        }
        other => Error::closed(format!("HTTP/3: {what}")).with_source(other),
    }
}

impl Shared {
    /// Opens our control stream with `ours` and starts reading the peer's streams; the
    /// peer has `settings_timeout` to send its SETTINGS.
    pub async fn start(
        conn: quinn::Connection,
        ours: Settings,
        side: Side,
        settings_timeout: std::time::Duration,
    ) -> Result<Arc<Shared>, Error> {
        let mut control = conn
            .open_uni()
            .await
            .map_err(|e| conn_error(e, "opening the control stream"))?;
        let mut buf = BytesMut::new();
        varint::encode(uni::CONTROL, &mut buf);
        let mut payload = Vec::new();
        ours.encode(&mut payload);
        frame::encode(FrameType::SETTINGS, &payload, &mut buf);
        control
            .write_all(&buf)
            .await
            .map_err(|e| Error::closed("HTTP/3: writing SETTINGS").with_source(e))?;
        let (tx, rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            conn: conn.clone(),
            settings: rx,
            settings_tx: tx,
            goaway: AtomicU64::new(u64::MAX),
            state: Mutex::new(ConnState::new(side, driver::now(), settings_timeout)),
            routes: Arc::new(Mutex::new(HashMap::new())),
            _control: tokio::sync::Mutex::new(Some(control)),
        });
        tokio::spawn(accept_uni(shared.clone()));
        tokio::spawn(route_datagrams(conn, shared.routes.clone()));
        tokio::spawn(settings_deadline(shared.clone()));
        Ok(shared)
    }

    /// Feeds the state and carries out what it decided.
    fn with_state<T>(&self, f: impl FnOnce(&mut ConnState) -> T) -> T {
        let mut st = lock(&self.state);
        let r = f(&mut st);
        while let Some(e) = st.poll_event() {
            match e {
                ConnEvent::Settings(s) => {
                    let _ = self.settings_tx.send(Some(Ok(s)));
                }
                ConnEvent::GoAway(id) => self.goaway.store(id, Ordering::Release),
                ConnEvent::NoSettings(waited) => {
                    let _ = self.settings_tx.send(Some(Err(no_settings(waited))));
                }
                ConnEvent::Close(e) => close(&self.conn, &e),
            }
        }
        r
    }

    /// Waits for the peer's SETTINGS (the state's deadline bounds the wait).
    pub async fn peer_settings(&self) -> Result<Settings, Error> {
        let mut rx = self.settings.clone();
        let closed = || Error::closed("HTTP/3: connection closed before the peer's SETTINGS");
        tokio::select! {
            r = rx.wait_for(|s| s.is_some()) => match r.map(|s| s.clone()) {
                Ok(Some(r)) => r,
                _ => Err(closed()),
            },
            _ = self.conn.closed() => Err(closed()),
        }
    }

    /// Sends GOAWAY with `id` on our control stream (RFC 9114 §5.2).
    pub async fn send_goaway(&self, id: u64) {
        let mut c = self._control.lock().await;
        if let Some(s) = c.as_mut() {
            let mut payload = Vec::new();
            varint::encode(id, &mut payload);
            let mut f = Vec::new();
            frame::encode(FrameType::GOAWAY, &payload, &mut f);
            let _ = s.write_all(&f).await;
        }
    }

    /// Binds the HTTP Datagram channel of request stream `stream_id`.
    pub fn datagrams(&self, stream_id: u64) -> H3Datagrams {
        let qsid = stream_id / 4;
        let (tx, rx) = mpsc::channel(DATAGRAM_QUEUE);
        lock(&self.routes).insert(qsid, tx);
        let mut prefix = BytesMut::new();
        varint::encode(qsid, &mut prefix);
        H3Datagrams {
            conn: self.conn.clone(),
            prefix: prefix.freeze(),
            qsid,
            rx: Mutex::new(rx),
            routes: self.routes.clone(),
        }
    }
}

/// Runs the state's SETTINGS deadline.
async fn settings_deadline(shared: Arc<Shared>) {
    while let Some(t) = shared.with_state(|s| s.poll_timeout()) {
        tokio::select! {
            _ = tokio::time::sleep_until(t.into()) => {}
            _ = shared.conn.closed() => return,
        }
        shared.with_state(|s| s.handle_timeout(driver::now()));
    }
}

async fn accept_uni(shared: Arc<Shared>) {
    loop {
        let mut recv = match shared.conn.accept_uni().await {
            Ok(r) => r,
            Err(_) => return,
        };
        let Some(ty) = read_stream_type(&mut recv).await else {
            continue;
        };
        let sh = shared.clone();
        match shared.with_state(|s| s.handle_uni_stream(ty)) {
            UniVerdict::Control => {
                tokio::spawn(read_stream(sh, recv, ConnState::handle_control, true));
            }
            UniVerdict::QpackEncoder => {
                tokio::spawn(read_stream(
                    sh,
                    recv,
                    ConnState::handle_qpack_encoder,
                    false,
                ));
            }
            UniVerdict::Drain => {
                tokio::spawn(read_stream(sh, recv, |_, _| {}, false));
            }
            UniVerdict::Stop(c) => {
                let _ = recv.stop(VarInt::from_u64(c.0).unwrap_or(VarInt::from_u32(0)));
            }
            UniVerdict::Refused => return,
        }
    }
}

async fn read_stream_type(recv: &mut quinn::RecvStream) -> Option<u64> {
    let mut buf = Vec::new();
    loop {
        if let Some((v, n)) = varint::peek(&buf) {
            debug_assert_eq!(n, buf.len());
            return Some(v);
        }
        let mut b = [0u8; 1];
        match recv.read(&mut b).await {
            Ok(Some(1)) => buf.push(b[0]),
            _ => return None,
        }
    }
}

/// Reads a unidirectional stream into the state; `critical`: its end is the state's
/// business (the control stream).
async fn read_stream(
    shared: Arc<Shared>,
    mut recv: quinn::RecvStream,
    feed: fn(&mut ConnState, Bytes),
    critical: bool,
) {
    loop {
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(c)) => shared.with_state(|s| feed(s, c.bytes)),
            Ok(None) if critical => return shared.with_state(|s| s.handle_control_end()),
            _ => return,
        }
    }
}

async fn route_datagrams(conn: quinn::Connection, routes: Routes) {
    while let Ok(d) = conn.read_datagram().await {
        let mut b = d;
        let Some(qsid) = varint::decode(&mut b) else {
            continue;
        };
        let tx = lock(&routes).get(&qsid).cloned();
        if let Some(tx) = tx {
            // A full queue drops the datagram, as a congested network would.
            let _ = tx.try_send(b);
        }
    }
}

/// The HTTP Datagrams of one request stream.
pub struct H3Datagrams {
    conn: quinn::Connection,
    prefix: Bytes,
    qsid: u64,
    rx: Mutex<mpsc::Receiver<Bytes>>,
    routes: Routes,
}

impl Drop for H3Datagrams {
    fn drop(&mut self) {
        lock(&self.routes).remove(&self.qsid);
    }
}

impl TunnelDatagrams for H3Datagrams {
    fn poll_send(&self, _cx: &mut Context<'_>, payload: &[u8]) -> Poll<std::io::Result<()>> {
        let mut b = BytesMut::with_capacity(self.prefix.len() + payload.len());
        b.put_slice(&self.prefix);
        b.put_slice(payload);
        match self.conn.send_datagram(b.freeze()) {
            Ok(()) => Poll::Ready(Ok(())),
            // Too large for the path now: dropped, as the network would (never a capsule).
            Err(quinn::SendDatagramError::TooLarge) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, e))),
        }
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        let mut rx = lock(&self.rx);
        match rx.poll_recv(cx) {
            Poll::Ready(Some(d)) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(None) => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_recv_bytes(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<Bytes>> {
        match lock(&self.rx).poll_recv(cx) {
            Poll::Ready(Some(d)) => Poll::Ready(Ok(d)),
            Poll::Ready(None) => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn max_payload(&self) -> usize {
        self.conn
            .max_datagram_size()
            .map_or(0, |m| m.saturating_sub(self.prefix.len()))
    }
}
