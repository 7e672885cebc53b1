//! The memory a run's decoded Scan pages may take at once, whatever the table's size.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use crate::item::{Item, item_size};

/// KB of DynamoDB's page limit.
const PAGE_KB: u32 = 1024;
/// Heap bytes a page's items take in the SDK's attribute maps per byte of their DynamoDB size:
/// 3.5 measured by `scripts/bench-engine` (docs/PERFORMANCE.md), rounded up.
const DECODED_PER_BYTE: u32 = 4;

/// `pages_in_memory`: the KB of decoded scan pages held at once, across every segment of a
/// run. A scan reserves a whole page before it is sent and keeps only what its answer holds.
#[derive(Debug, Clone)]
pub struct PageBudget(Arc<Semaphore>);

impl PageBudget {
    pub fn new(megabytes: usize) -> PageBudget {
        // At least one whole page, or a scan could never reserve one.
        let kb = (megabytes * PAGE_KB as usize).max((PAGE_KB * DECODED_PER_BYTE) as usize);
        PageBudget(Arc::new(Semaphore::new(kb)))
    }

    /// Before a Scan: room for the largest page DynamoDB answers, decoded.
    pub async fn reserve(&self) -> Result<OwnedSemaphorePermit> {
        self.0
            .clone()
            .acquire_many_owned(PAGE_KB * DECODED_PER_BYTE)
            .await
            .map_err(|_| Error::Interrupted)
    }

    /// After its answer: keeps what the page's items take decoded, gives the rest back at once.
    pub fn keep(permit: &mut OwnedSemaphorePermit, items: &[Item]) {
        let kb = items.iter().map(item_size).sum::<usize>().div_ceil(1024);
        let keep = (kb as u32).clamp(1, PAGE_KB) * DECODED_PER_BYTE;
        drop(permit.split((PAGE_KB * DECODED_PER_BYTE - keep) as usize));
    }
}
