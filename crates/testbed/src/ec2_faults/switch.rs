//! The proxy's connections: a request can make its own connection close without an answer
//! ([`Switch`]): the connection then fails its next write, and the server drops it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The hang-up switch of one connection: once set, the connection fails its next write, so
/// the server drops it without writing the answer.
#[derive(Debug, Clone, Default)]
pub(super) struct Switch(pub(super) Arc<AtomicBool>);

/// Accepts connections whose answers a request can suppress ([`Switch`]).
pub(super) struct SwitchedListener(pub(super) tokio::net::TcpListener);

/// A connection with its [`Switch`].
pub(super) struct SwitchedStream {
    stream: tokio::net::TcpStream,
    switch: Switch,
}

impl Listener for SwitchedListener {
    type Io = SwitchedStream;
    type Addr = Switch;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, _)) => {
                    let switch = Switch::default();
                    let io = SwitchedStream {
                        stream,
                        switch: switch.clone(),
                    };
                    return (io, switch);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Switch::default())
    }
}

impl Connected<IncomingStream<'_, SwitchedListener>> for Switch {
    fn connect_info(stream: IncomingStream<'_, SwitchedListener>) -> Self {
        stream.remote_addr().clone()
    }
}

fn hung_up() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "connection closed by the EC2 fault proxy",
    )
}

impl AsyncRead for SwitchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SwitchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.switch.0.load(Ordering::SeqCst) {
            return Poll::Ready(Err(hung_up()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        if self.switch.0.load(Ordering::SeqCst) {
            return Poll::Ready(Err(hung_up()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
