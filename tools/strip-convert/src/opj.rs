//! The one OpenJPEG wrapper of the tool: a codec with its message handlers set up and
//! its teardown, the streams it reads or writes and the images it makes, each freed
//! exactly once on drop (also on every error path). The encoder ([`crate::encode`]) and
//! the verifying decoder ([`crate::verify`]) make their calls through these owners.

use membudget::{Error, ErrorKind};
use openjpeg_sys as opj;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use std::ptr;

/// OpenJPEG's error messages, joined by "; "; boxed in [`Codec`] so its address stays
/// fixed while the codec moves.
#[derive(Debug, Default)]
struct Messages(String);

unsafe extern "C" fn on_error(msg: *const c_char, data: *mut c_void) {
    if msg.is_null() || data.is_null() {
        return;
    }
    // SAFETY: `data` is the boxed `Messages` of the `Codec` this handler was set on,
    // alive as long as the codec, and OpenJPEG calls back on the thread that called it.
    let m = unsafe { &mut *data.cast::<Messages>() };
    // SAFETY: OpenJPEG passes a NUL-terminated message.
    let s = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
    if !m.0.is_empty() {
        m.0.push_str("; ");
    }
    m.0.push_str(s.trim());
}

/// Warnings and information: the record carries the outcome, not OpenJPEG's chatter.
unsafe extern "C" fn ignore(_msg: *const c_char, _data: *mut c_void) {}

/// An OpenJPEG codec (compressor or decompressor) whose errors are collected for the
/// error record and whose warnings are dropped.
pub(crate) struct Codec {
    ptr: *mut opj::opj_codec_t,
    messages: Box<Messages>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("errors", &self.messages.0)
            .finish()
    }
}

impl Drop for Codec {
    fn drop(&mut self) {
        // SAFETY: created by opj_create_compress/decompress (never null here), destroyed
        // only here.
        unsafe { opj::opj_destroy_codec(self.ptr) };
    }
}

impl Codec {
    /// A J2K codestream compressor.
    pub(crate) fn compressor() -> Result<Codec, Error> {
        // SAFETY: a plain constructor; the result is checked for null.
        Self::with_handlers(unsafe { opj::opj_create_compress(opj::CODEC_FORMAT::OPJ_CODEC_J2K) })
    }

    /// A JP2 file decompressor.
    pub(crate) fn jp2_decompressor() -> Result<Codec, Error> {
        // SAFETY: a plain constructor; the result is checked for null.
        Self::with_handlers(unsafe { opj::opj_create_decompress(opj::CODEC_FORMAT::OPJ_CODEC_JP2) })
    }

    fn with_handlers(ptr: *mut opj::opj_codec_t) -> Result<Codec, Error> {
        if ptr.is_null() {
            return Err(Error::new(
                ErrorKind::Internal,
                "OpenJPEG could not allocate a codec",
            ));
        }
        let mut c = Codec {
            ptr,
            messages: Box::default(),
        };
        let messages: *mut Messages = &mut *c.messages;
        // SAFETY: `ptr` is a live codec; `messages` is boxed in the codec's owner, so it
        // stays valid (and in place) until the codec is destroyed in `drop`.
        unsafe {
            opj::opj_set_error_handler(ptr, Some(on_error), messages.cast());
            opj::opj_set_warning_handler(ptr, Some(ignore), ptr::null_mut());
            opj::opj_set_info_handler(ptr, Some(ignore), ptr::null_mut());
        }
        Ok(c)
    }

    /// The raw codec, for the calls the owner makes (valid while `self` lives).
    pub(crate) fn as_ptr(&self) -> *mut opj::opj_codec_t {
        self.ptr
    }

    /// What OpenJPEG reported through its error handler so far ("" if nothing).
    pub(crate) fn errors(&self) -> &str {
        &self.messages.0
    }
}

/// An in-memory output for OpenJPEG: bytes land in a `Vec` with seek support (the codec
/// seeks back to patch lengths).
#[derive(Debug, Default)]
struct MemSink {
    buf: Vec<u8>,
    pos: usize,
}

unsafe extern "C" fn sink_write(data: *mut c_void, n: usize, user: *mut c_void) -> usize {
    // SAFETY: `user` is the boxed `MemSink` of the `Stream` that owns the OpenJPEG
    // stream, alive until the stream is destroyed.
    let sink = unsafe { &mut *user.cast::<MemSink>() };
    // SAFETY: `data` points at `n` readable bytes (OpenJPEG's write contract).
    let src = unsafe { std::slice::from_raw_parts(data as *const u8, n) };
    let end = sink.pos + n;
    if end > sink.buf.len() {
        sink.buf.resize(end, 0);
    }
    sink.buf[sink.pos..end].copy_from_slice(src);
    sink.pos = end;
    n
}

unsafe extern "C" fn sink_skip(n: i64, user: *mut c_void) -> i64 {
    // SAFETY: as in `sink_write`.
    let sink = unsafe { &mut *user.cast::<MemSink>() };
    let Some(p) = (sink.pos as i64).checked_add(n).filter(|p| *p >= 0) else {
        return -1;
    };
    sink.pos = p as usize;
    n
}

unsafe extern "C" fn sink_seek(n: i64, user: *mut c_void) -> i32 {
    // SAFETY: as in `sink_write`.
    let sink = unsafe { &mut *user.cast::<MemSink>() };
    if n < 0 {
        return 0;
    }
    sink.pos = n as usize;
    1
}

/// An OpenJPEG stream: a file read from, or a memory buffer written to.
pub(crate) struct Stream {
    ptr: *mut opj::opj_stream_t,
    /// The memory output's bytes; dropped after the stream (`Drop::drop` runs first).
    sink: Option<Box<MemSink>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("bytes", &self.sink.as_ref().map(|s| s.buf.len()))
            .finish()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: created by opj_stream_create* (never null here), destroyed only here;
        // the sink it writes to is still alive.
        unsafe { opj::opj_stream_destroy(self.ptr) };
    }
}

impl Stream {
    /// A stream reading the file at `path`.
    pub(crate) fn read_file(path: &Path) -> Result<Stream, Error> {
        let cpath = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::new(ErrorKind::Io, "path contains NUL"))?;
        // SAFETY: a NUL-terminated path, copied by OpenJPEG (it opens the file now);
        // the result is checked for null.
        let ptr = unsafe { opj::opj_stream_create_default_file_stream(cpath.as_ptr(), 1) };
        if ptr.is_null() {
            return Err(Error::new(
                ErrorKind::Io,
                format!("OpenJPEG cannot open {}", path.display()),
            ));
        }
        Ok(Stream { ptr, sink: None })
    }

    /// A stream writing into memory (see [`Stream::take_bytes`]).
    pub(crate) fn to_memory() -> Result<Stream, Error> {
        // SAFETY: a plain constructor (1 MiB buffer, output); checked for null.
        let ptr = unsafe { opj::opj_stream_create(1 << 20, 0) };
        if ptr.is_null() {
            return Err(Error::new(
                ErrorKind::Internal,
                "OpenJPEG could not allocate a stream",
            ));
        }
        let mut s = Stream {
            ptr,
            sink: Some(Box::default()),
        };
        let sink: *mut MemSink = s.sink.as_deref_mut().map_or(ptr::null_mut(), |m| m);
        // SAFETY: `ptr` is a live stream; `sink` is boxed in the stream's owner and
        // freed after the stream (no free function given to OpenJPEG).
        unsafe {
            opj::opj_stream_set_user_data(ptr, sink.cast(), None);
            opj::opj_stream_set_write_function(ptr, Some(sink_write));
            opj::opj_stream_set_skip_function(ptr, Some(sink_skip));
            opj::opj_stream_set_seek_function(ptr, Some(sink_seek));
        }
        Ok(s)
    }

    /// The raw stream, for the calls the owner makes (valid while `self` lives).
    pub(crate) fn as_ptr(&self) -> *mut opj::opj_stream_t {
        self.ptr
    }

    /// The bytes a memory stream received (empty for a file stream).
    pub(crate) fn take_bytes(&mut self) -> Vec<u8> {
        self.sink
            .as_mut()
            .map(|s| std::mem::take(&mut s.buf))
            .unwrap_or_default()
    }
}

/// An OpenJPEG image (null until a call fills it, as `opj_read_header` does).
pub(crate) struct Image {
    ptr: *mut opj::opj_image_t,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Image")
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: created by OpenJPEG (opj_image_tile_create or opj_read_header),
            // destroyed only here.
            unsafe { opj::opj_image_destroy(self.ptr) };
        }
    }
}

impl Image {
    /// No image yet: [`Image::slot`] receives one.
    pub(crate) fn empty() -> Image {
        Image {
            ptr: ptr::null_mut(),
        }
    }

    /// A tile-less image of `comps` components (opj_image_tile_create: no sample
    /// buffers, the data comes per tile).
    pub(crate) fn tile_image(
        comps: &mut [opj::opj_image_cmptparm_t],
        space: opj::COLOR_SPACE,
    ) -> Result<Image, Error> {
        let n = u32::try_from(comps.len())
            .map_err(|_| Error::new(ErrorKind::Internal, "too many components"))?;
        // SAFETY: `comps` holds `n` initialised component parameters, read (not kept)
        // by OpenJPEG; the result is checked for null.
        let ptr = unsafe { opj::opj_image_tile_create(n, comps.as_mut_ptr(), space) };
        if ptr.is_null() {
            return Err(Error::new(
                ErrorKind::Internal,
                "OpenJPEG could not allocate an image",
            ));
        }
        Ok(Image { ptr })
    }

    /// The raw image (null while empty).
    pub(crate) fn as_ptr(&self) -> *mut opj::opj_image_t {
        self.ptr
    }

    /// Where a call stores the image it allocates; an earlier one is freed first.
    pub(crate) fn slot(&mut self) -> &mut *mut opj::opj_image_t {
        if !self.ptr.is_null() {
            // SAFETY: as in `drop`; the pointer is cleared right after.
            unsafe { opj::opj_image_destroy(self.ptr) };
            self.ptr = ptr::null_mut();
        }
        &mut self.ptr
    }

    /// The image header and components, when there is an image.
    pub(crate) fn get(&self) -> Option<&opj::opj_image_t> {
        // SAFETY: null or a live image owned by `self`.
        unsafe { self.ptr.as_ref() }
    }

    /// The image header, to change, when there is an image.
    pub(crate) fn get_mut(&mut self) -> Option<&mut opj::opj_image_t> {
        // SAFETY: null or a live image owned by `self`, borrowed mutably through it.
        unsafe { self.ptr.as_mut() }
    }
}
