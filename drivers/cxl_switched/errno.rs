// SPDX-License-Identifier: GPL-2.0

//! The errno of each handoff protocol error, in one place, and how the kernel prints one.
//!
//! | protocol error                 | errno             | meaning for the caller           |
//! |--------------------------------|-------------------|----------------------------------|
//! | `Medium`                       | `EIO`             | the header could not be accessed |
//! | `NotKept`                      | `EIO`             | the device drops what is written |
//! | `Header(Newer/Older)`          | `EPROTONOSUPPORT` | another major version            |
//! | any other `Header`             | `EUCLEAN`         | not a header to use              |
//! | `Corrupt`                      | `EUCLEAN`         | a table record has no valid copy |
//! | `Overflow`                     | `EUCLEAN`         | a counter at its largest value   |
//! | `Expired`, `Fenced`, `Evicted` | `ESTALE`          | this host is no member any more  |
//! | `Full`                         | `ENOSPC`          | no record or confirmation left   |
//! | `Busy`                         | `EBUSY`           | another host is formatting       |
//! | `Suspect`                      | `EAGAIN`          | a suspect holds the lock         |
//! | `Invalid`                      | `EINVAL`          | a request the tables refuse      |
//! | `Manifest`                     | `EBADMSG`         | a peer's page list is unusable   |
//! | `TimedOut`, `Unformatted`      | `ETIMEDOUT`       | a bounded wait ended             |

use kernel::{
    error::{code::*, Error},
    fmt,
};

use crate::handoff::{abi::HeaderError, protocol::Error as ProtocolError};

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        match e {
            ProtocolError::Medium | ProtocolError::NotKept => EIO,
            ProtocolError::Header(HeaderError::Newer { .. } | HeaderError::Older { .. }) => {
                EPROTONOSUPPORT
            }
            ProtocolError::Header(_) | ProtocolError::Corrupt(..) | ProtocolError::Overflow(_) => {
                EUCLEAN
            }
            ProtocolError::Expired | ProtocolError::Fenced | ProtocolError::Evicted => ESTALE,
            ProtocolError::Full(_) => ENOSPC,
            ProtocolError::Busy => EBUSY,
            ProtocolError::Suspect => EAGAIN,
            ProtocolError::Invalid(_) => EINVAL,
            ProtocolError::Manifest(_) => EBADMSG,
            ProtocolError::TimedOut | ProtocolError::Unformatted => ETIMEDOUT,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
