//! Opening a device on the adapter wgpu finds (Vulkan, Metal or DX12; on a
//! machine with no GPU, Mesa's software Vulkan driver, lavapipe), with the
//! adapter's real limits, and catching every error wgpu reports: error
//! scopes around each call that can fail, an uncaptured-error handler
//! (wgpu's default one panics) and a device-lost callback, all turned into
//! [`WgpuError`]s.

use std::sync::{Arc, Mutex, OnceLock};

use crate::WgpuError;

/// One device and its queue, owned by one program.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    uncaptured: Arc<Mutex<Vec<String>>>,
    lost: Arc<Mutex<Option<String>>>,
}

/// Enumerating adapters loads the drivers: once per process.
fn instance() -> &'static wgpu::Instance {
    static INSTANCE: OnceLock<wgpu::Instance> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
        wgpu::Instance::new(desc)
    })
}

/// How to get a GPU when none is found, for the error message.
const INSTALL_HINT: &str = "tried wgpu's Vulkan, Metal and DX12 backends (WGPU_BACKEND overrides); \
     install a GPU driver, or on Linux without a GPU Mesa's software Vulkan driver \
     (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`)";

impl Gpu {
    pub fn open() -> Result<Gpu, WgpuError> {
        let adapter = pollster::block_on(instance().request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            // The real limits: kiln sizes its one buffer by them.
            apply_limit_buckets: false,
        }))
        .map_err(|e| WgpuError::NoAdapter(format!("{e}; {INSTALL_HINT}")))?;
        let info = adapter.get_info();
        // wgpu's defaults cap a storage binding at 128 MiB: ask for what the
        // adapter really has.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("kiln"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| WgpuError::NoAdapter(format!("{} ({:?}) refused a device: {e}", info.name, info.backend)))?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let sink = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut l) = sink.lock() {
                *l = Some(format!("{reason:?}: {msg}"));
            }
        });
        Ok(Gpu { device, queue, info, limits, uncaptured, lost })
    }

    /// "name (backend, device type)", for `kiln inspect` and errors.
    pub fn adapter_text(&self) -> String {
        format!("{} ({:?}, {:?}, driver {})", self.info.name, self.info.backend, self.info.device_type, self.info.driver_info)
    }

    /// Runs `f` inside validation and out-of-memory error scopes; any error
    /// wgpu reports during it (or before it, uncaptured), or a lost device,
    /// is returned instead of `f`'s value.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T, WgpuError> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            return Err(WgpuError::OutOfMemory(format!("{what}: {e}")));
        }
        if let Some(e) = v {
            return Err(WgpuError::Device(format!("{what}: {e}")));
        }
        self.healthy()?;
        Ok(value)
    }

    /// An error if the device was lost or wgpu reported an error no scope caught.
    pub fn healthy(&self) -> Result<(), WgpuError> {
        if let Some(l) = self.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(WgpuError::DeviceLost(l));
        }
        if let Some(e) = self.uncaptured.lock().ok().and_then(|mut v| v.pop()) {
            return Err(WgpuError::Device(e));
        }
        Ok(())
    }

    /// Waits for all submitted work.
    pub fn wait(&self) -> Result<(), WgpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| WgpuError::Device(format!("waiting for the GPU: {e}")))
    }

    /// Copies `bytes` bytes at `offset` of `src` back to the host.
    pub fn read(&self, src: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>, WgpuError> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.scoped("creating a read-back buffer", || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kiln read-back"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        self.scoped("reading back", || {
            let mut enc = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln read") });
            enc.copy_buffer_to_buffer(src, offset, &staging, 0, bytes);
            self.queue.submit([enc.finish()]);
        })?;
        self.map_read(&staging, bytes)
    }

    /// Maps a MAP_READ buffer (after the copies into it were submitted) and
    /// returns its first `bytes` bytes.
    pub fn map_read(&self, staging: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, WgpuError> {
        let slice = staging.slice(0..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(WgpuError::Device(format!("mapping a read-back buffer: {e}"))),
            Err(_) => return Err(WgpuError::Device("the read-back mapping never completed".into())),
        }
        let out = slice.get_mapped_range().map_err(|e| WgpuError::Device(format!("reading a mapped buffer: {e}")))?.to_vec();
        staging.unmap();
        self.healthy()?;
        Ok(out)
    }
}
