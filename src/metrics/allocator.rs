//! `wasimancer_allocator_bytes`: what jemalloc holds, read at each scrape.
//!
//! The process's resident memory alone cannot tell a leak from an allocator
//! that keeps pages: `allocated` is what live objects take, `active` the
//! pages they sit on, `resident` what the allocator has in RAM (its
//! `metadata` included). A leak raises `allocated`; fragmentation raises
//! `active` or `resident` above it; RSS above `resident` is memory the
//! allocator does not manage (plugin instances' memories and compiled code,
//! thread stacks, the binary, C code on glibc's malloc).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads jemalloc's statistics when scraped; reports nothing without them.
#[derive(Debug, Default)]
pub struct AllocatorCollector;

/// One look at jemalloc's statistics, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AllocatorStats {
    pub allocated: u64,
    pub active: u64,
    pub resident: u64,
    pub metadata: u64,
    pub retained: u64,
}

impl AllocatorStats {
    /// The statistics as of now, where the allocator keeps them.
    #[cfg(not(target_env = "msvc"))]
    pub fn read() -> Option<Self> {
        use tikv_jemalloc_ctl::{epoch, stats};
        // jemalloc caches its statistics until the epoch moves on.
        epoch::advance().ok()?;
        Some(Self {
            allocated: stats::allocated::read().ok()? as u64,
            active: stats::active::read().ok()? as u64,
            resident: stats::resident::read().ok()? as u64,
            metadata: stats::metadata::read().ok()? as u64,
            retained: stats::retained::read().ok()? as u64,
        })
    }

    #[cfg(target_env = "msvc")]
    pub fn read() -> Option<Self> {
        None
    }
}

impl Collector for AllocatorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = AllocatorStats::read() else {
            return Ok(());
        };
        let gauge = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "wasimancer_allocator_bytes",
            "Memory held by the allocator (jemalloc), by state: allocated (live objects), active (their pages), resident (in RAM, metadata included), metadata, retained (returned to the system, address space kept).",
            None,
            gauge.metric_type(),
        )?;
        for (state, bytes) in [
            ("allocated", stats.allocated),
            ("active", stats.active),
            ("resident", stats.resident),
            ("metadata", stats.metadata),
            ("retained", stats.retained),
        ] {
            ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX))
                .encode(family.encode_family(&[("state", state)])?)?;
        }
        Ok(())
    }
}

#[cfg(all(test, not(target_env = "msvc")))]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use tikv_jemallocator::Jemalloc;

    use super::*;

    #[test]
    fn live_objects_are_counted_and_fit_in_their_pages_and_those_in_ram() {
        // Unit tests allocate with the system's malloc (jemalloc is the
        // binary's allocator): hold 64 blocks of jemalloc's while looking.
        let layout = Layout::from_size_align(64 * 1024, 8).expect("a valid layout");
        // SAFETY: a non-zero size; each block is freed below with the same layout.
        let blocks: Vec<*mut u8> = (0..64).map(|_| unsafe { Jemalloc.alloc(layout) }).collect();
        assert!(blocks.iter().all(|block| !block.is_null()));
        let stats = AllocatorStats::read().expect("jemalloc keeps statistics");
        for block in blocks {
            // SAFETY: allocated above by the same allocator with this layout.
            unsafe { Jemalloc.dealloc(block, layout) };
        }
        assert!(stats.allocated >= 64 * 64 * 1024, "{stats:?}");
        assert!(stats.active >= stats.allocated, "{stats:?}");
        assert!(stats.resident >= stats.metadata, "{stats:?}");
    }
}
