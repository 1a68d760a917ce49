//! A caller's counters.

use crate::counters::counter_set;

/// A caller's counters: each counts from the caller's creation, except the
/// gauge `in_flight`. This struct is also the C API's `rrpc_caller_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallerStats {
    /// Calls made (refused ones included).
    pub calls: u64,
    /// Calls answered by the device (RrpcCode SUCCESS).
    pub success: u64,
    /// Calls with no answer in time (TIMEOUT).
    pub timeout: u64,
    /// Calls to a device known to be offline (OFFLINE).
    pub offline: u64,
    /// Calls to a device whose connection dropped moments ago (HALFCONN).
    pub halfconn: u64,
    /// Calls that failed in the caller (UNKNOWN).
    pub unknown: u64,
    /// Calls refused before sending (parameters, not connected, too many in flight).
    pub refused: u64,
    /// Responses that arrived after their call had timed out (discarded).
    pub late_responses: u64,
    /// Responses for ids this caller never sent or no longer remembers.
    pub unknown_responses: u64,
    /// Second responses to a call already answered (discarded: the first wins).
    pub duplicate_responses: u64,
    /// Retained messages on a response topic (never taken as a reply).
    pub retained_responses: u64,
    /// Messages with the id of a call in flight on another topic than the
    /// called device's response topic (another device, or another ContentType):
    /// discarded, the call goes on.
    pub mismatched_responses: u64,
    /// Presence entries forgotten to stay within `max_presence`.
    pub presence_evicted: u64,
    /// Response subscriptions dropped after `subscription_idle_ms` unused.
    pub unsubscribed: u64,
    /// Gauge: calls in flight now.
    pub in_flight: u64,
}

counter_set!(CallerStats as CallerCounter {
    calls,
    success,
    timeout,
    offline,
    halfconn,
    unknown,
    refused,
    late_responses,
    unknown_responses,
    duplicate_responses,
    retained_responses,
    mismatched_responses,
    presence_evicted,
    unsubscribed,
    in_flight,
});
