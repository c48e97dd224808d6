//! HTTP/2 settings, with defaults sized for throughput.

/// HTTP/2 settings for both roles.
///
/// The protocol's default 64 KiB windows cap one stream at about 640 KB/s over a 100 ms
/// path; burrow's defaults allow 4 MiB per stream and 16 MiB per connection. A window is a
/// promise, not an allocation: memory is only used when the application reads slower than
/// the peer sends, and then at most the window per stream and the connection window overall.
#[derive(Clone, Debug)]
pub struct Http2Config {
    pub(crate) stream_window: u32,
    pub(crate) connection_window: u32,
    pub(crate) max_frame_size: u32,
    pub(crate) max_header_list_size: u32,
    pub(crate) max_concurrent_streams: u32,
    pub(crate) max_send_buffer: usize,
    pub(crate) handshake_timeout: std::time::Duration,
    pub(crate) extended_connect: bool,
}

/// Default receive window per stream: 4 MiB.
pub const DEFAULT_STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// Default receive window per connection: 16 MiB.
pub const DEFAULT_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// Default largest frame we accept: 64 KiB (fewer frames per megabyte than 16 KiB).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 64 * 1024;
/// Default limit on a received header list (decoded, RFC 9113 §6.5.2): 64 KiB, as HTTP/1.1.
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;
/// Default concurrent streams a server allows a client: 256.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 256;
/// Default deadline for a server to receive the client's preface and SETTINGS.
pub const DEFAULT_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Default bytes buffered per stream on the send side: 1 MiB.
pub const DEFAULT_MAX_SEND_BUFFER: usize = 1024 * 1024;

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            stream_window: DEFAULT_STREAM_WINDOW,
            connection_window: DEFAULT_CONNECTION_WINDOW,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_header_list_size: DEFAULT_MAX_HEADER_LIST_SIZE,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_send_buffer: DEFAULT_MAX_SEND_BUFFER,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            extended_connect: true,
        }
    }
}

impl Http2Config {
    /// Receive window per stream: how far the peer may send ahead of the reader.
    pub fn stream_window(&mut self, bytes: u32) -> &mut Self {
        self.stream_window = bytes;
        self
    }

    /// Receive window for the whole connection (caps buffered bytes across streams).
    pub fn connection_window(&mut self, bytes: u32) -> &mut Self {
        self.connection_window = bytes;
        self
    }

    /// Largest frame payload we accept (16 KiB to 16 MiB − 1).
    pub fn max_frame_size(&mut self, bytes: u32) -> &mut Self {
        self.max_frame_size = bytes.clamp(16_384, 16_777_215);
        self
    }

    /// Largest header list we accept; a larger one resets the stream.
    pub fn max_header_list_size(&mut self, bytes: u32) -> &mut Self {
        self.max_header_list_size = bytes;
        self
    }

    /// Server: concurrent streams a client may open (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub fn max_concurrent_streams(&mut self, n: u32) -> &mut Self {
        self.max_concurrent_streams = n;
        self
    }

    /// Server: deadline for the client's connection preface and SETTINGS; a client that
    /// has not sent both by then is disconnected.
    pub fn handshake_timeout(&mut self, d: std::time::Duration) -> &mut Self {
        self.handshake_timeout = d;
        self
    }

    /// Bytes buffered per stream before writes wait (send-side back-pressure).
    pub fn max_send_buffer(&mut self, bytes: usize) -> &mut Self {
        self.max_send_buffer = bytes;
        self
    }

    /// Server: whether SETTINGS_ENABLE_CONNECT_PROTOCOL is sent (RFC 8441 §3; on by
    /// default, for CONNECT-UDP, CONNECT-TCP and CONNECT-IP). Off, a client does not try
    /// an extended CONNECT (a browser opens its WebSockets over HTTP/1.1 instead).
    pub fn extended_connect(&mut self, on: bool) -> &mut Self {
        self.extended_connect = on;
        self
    }

    pub(crate) fn client(&self) -> h2::client::Builder {
        let mut b = h2::client::Builder::new();
        b.initial_window_size(self.stream_window)
            .initial_connection_window_size(self.connection_window)
            .max_frame_size(self.max_frame_size)
            .max_header_list_size(self.max_header_list_size)
            .max_send_buffer_size(self.max_send_buffer)
            .enable_push(false);
        b
    }

    pub(crate) fn server(&self) -> h2::server::Builder {
        let mut b = h2::server::Builder::new();
        b.initial_window_size(self.stream_window)
            .initial_connection_window_size(self.connection_window)
            .max_frame_size(self.max_frame_size)
            .max_header_list_size(self.max_header_list_size)
            .max_concurrent_streams(self.max_concurrent_streams)
            .max_send_buffer_size(self.max_send_buffer);
        if self.extended_connect {
            b.enable_connect_protocol();
        }
        b
    }
}
