// SPDX-License-Identifier: GPL-2.0

//! Drivers of dax devices.
//!
//! A dax device is a range of memory, typically of a CXL region or of persistent memory, that a
//! dax driver binds to: `device_dax` maps it as a character device, `dax/kmem` turns it into
//! System RAM. A driver registered here binds to the devices of the kind it asks for; its probe
//! may decline a device with [`ENODEV`], which leaves the device to the other dax drivers.
//!
//! C header: [`include/linux/dax_driver.h`](srctree/include/linux/dax_driver.h)

use crate::{
    bindings,
    device::Device,
    error::{from_result, to_result},
    prelude::*,
    str::Formatter,
    types::{ForeignOwnable, Opaque},
    ThisModule,
};
use core::marker::PhantomData;

/// The most read-only sysfs attributes a driver may put on each bound device.
pub const MAX_ATTRIBUTES: usize = 32;

/// A physical range of a dax device, inclusive of `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The first byte.
    pub start: u64,
    /// The last byte.
    pub end: u64,
}

impl Range {
    /// The number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end.wrapping_sub(self.start).wrapping_add(1)
    }

    /// Whether the range is empty, which a dax range never is.
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }
}

/// A dax device.
///
/// # Invariants
///
/// `self.0` is a valid `struct dev_dax` for the lifetime of the reference.
#[repr(transparent)]
pub struct DevDax(Opaque<bindings::dev_dax>);

impl DevDax {
    /// Creates a reference from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `struct dev_dax` for the lifetime `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::dev_dax) -> &'a Self {
        // SAFETY: `DevDax` is a transparent wrapper of `struct dev_dax`, valid for `'a` by the
        // safety requirements.
        unsafe { &*ptr.cast() }
    }

    fn as_raw(&self) -> *mut bindings::dev_dax {
        self.0.get()
    }

    /// The generic device.
    pub fn as_device(&self) -> &Device {
        // SAFETY: By the type invariant `self` is a valid dax device; its `struct device` is
        // embedded in it and lives as long.
        unsafe { Device::from_raw(bindings::dev_dax_device(self.as_raw())) }
    }

    /// The NUMA node the device's memory belongs to, if the platform gave one.
    pub fn target_node(&self) -> Option<i32> {
        // SAFETY: By the type invariant `self` is a valid dax device.
        let nid = unsafe { bindings::dev_dax_target_node(self.as_raw()) };
        (nid >= 0).then_some(nid)
    }

    /// How many physical ranges back the device.
    pub fn nr_ranges(&self) -> usize {
        // SAFETY: By the type invariant `self` is a valid dax device.
        let n = unsafe { bindings::dev_dax_nr_ranges(self.as_raw()) };
        usize::try_from(n).unwrap_or(0)
    }

    /// The physical range `i`, below [`DevDax::nr_ranges`].
    pub fn range(&self, i: usize) -> Result<Range> {
        let i = c_int::try_from(i).map_err(|_| EINVAL)?;
        let mut r = bindings::range::default();
        // SAFETY: By the type invariant `self` is a valid dax device; `r` is valid for writes and
        // the function checks `i`.
        to_result(unsafe { bindings::dev_dax_range(self.as_raw(), i, &mut r) })?;
        Ok(Range {
            start: r.start,
            end: r.end,
        })
    }
}

/// The kind of dax devices a driver binds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Devices meant to become System RAM, as `dax/kmem` binds them.
    Kmem,
    /// Devices meant to be mapped as character devices, as `device_dax` binds them.
    Device,
}

/// A sysfs attribute that a driver puts on each bound device: read-only, or write-only.
///
/// Drivers implement it on a field-less enum of their attributes, so that [`Driver::show`] and
/// [`Driver::store`] match on what is asked for rather than on a position in a list.
pub trait Attribute: Copy + 'static {
    /// Every attribute, in the order sysfs lists them; at most [`MAX_ATTRIBUTES`].
    const ALL: &'static [Self];

    /// The attribute's file name.
    fn name(self) -> &'static CStr;

    /// Whether the attribute is written, not read: a request to the driver, mode 0200, whose
    /// writes go to [`Driver::store`]. Attributes are read-only (0444) unless they say so.
    fn write_only(self) -> bool {
        false
    }
}

/// A dax driver.
pub trait Driver: 'static {
    /// What the driver keeps for each bound device.
    type Data: Send + Sync;

    /// The kind of devices the driver binds to.
    const KIND: Kind;

    /// The directory, below each bound device, of the driver's sysfs attributes.
    const ATTRIBUTE_DIR: &'static CStr;

    /// The sysfs attributes the driver puts on each bound device.
    type Attribute: Attribute;

    /// Whether `dev`, a device of [`Driver::KIND`], is meant for this driver and no other.
    ///
    /// A claimed device matches this driver only, so that a driver that binds every device of
    /// the kind, such as dax/kmem, does not take it even if it registered first. Claims do not
    /// take a device from the driver it is bound to, and devices added by name through `new_id`
    /// are not subject to them.
    fn claim(_dev: &DevDax) -> bool {
        false
    }

    /// Binds to `dev`, or declines it with [`ENODEV`] to leave it to other dax drivers.
    fn probe(dev: &DevDax) -> Result<Pin<KBox<Self::Data>>>;

    /// Unbinds from `dev`, taking back what probe returned.
    fn remove(dev: &DevDax, data: Pin<KBox<Self::Data>>);

    /// Writes the text of attribute `attr` of a bound device into `out`, one page.
    ///
    /// # Errors
    ///
    /// The error is what the read of the attribute fails with; text that does not fit the page
    /// should fail with [`EINVAL`].
    fn show(data: Pin<&Self::Data>, attr: Self::Attribute, out: &mut Formatter<'_>) -> Result;

    /// Takes a write of `input` (at most one page, as written) to write-only attribute `attr` of
    /// a bound device. Drivers without write-only attributes need not implement it.
    ///
    /// # Errors
    ///
    /// The error is what the write fails with; by default [`EINVAL`].
    fn store(_data: Pin<&Self::Data>, _attr: Self::Attribute, _input: &[u8]) -> Result {
        Err(EINVAL)
    }
}

/// The sysfs attribute table of a registration: stable in memory, as sysfs points into it.
#[repr(C)]
struct AttrTable {
    attrs: [bindings::device_attribute; MAX_ATTRIBUTES],
    ptrs: [*mut bindings::attribute; MAX_ATTRIBUTES + 1],
    group: bindings::attribute_group,
    groups: [*const bindings::attribute_group; 2],
}

/// A registered dax driver.
///
/// # Invariants
///
/// `drv` is registered with the dax bus for the lifetime of this object, and `table` holds the
/// attributes its `dev_groups` point to.
#[pin_data(PinnedDrop)]
pub struct Registration<T: Driver> {
    #[pin]
    drv: Opaque<bindings::dax_device_driver>,
    table: KBox<Opaque<AttrTable>>,
    _t: PhantomData<T>,
}

// SAFETY: The registration is only touched on creation and drop; the C side serialises probe,
// remove and show.
unsafe impl<T: Driver> Send for Registration<T> {}
// SAFETY: `&Registration` gives access to nothing.
unsafe impl<T: Driver> Sync for Registration<T> {}

impl<T: Driver> Registration<T> {
    /// Registers the driver as `name` for `module`.
    pub fn new(name: &'static CStr, module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            table <- Self::table(),
            drv <- Opaque::try_ffi_init(|drv: *mut bindings::dax_device_driver| {
                // SAFETY: `drv` is valid for writes; zeroed is a valid initial state of the C
                // structure, whose fields are set below before registration.
                unsafe {
                    drv.write(pin_init::zeroed());
                    (*drv).type_ = match T::KIND {
                        Kind::Kmem => bindings::dax_driver_type_DAXDRV_KMEM_TYPE,
                        Kind::Device => bindings::dax_driver_type_DAXDRV_DEVICE_TYPE,
                    };
                    (*drv).probe = Some(Self::probe_callback);
                    (*drv).remove = Some(Self::remove_callback);
                    (*drv).claim = Some(Self::claim_callback);
                }
                Ok::<(), Error>(())
            }),
            _t: PhantomData,
        })
        .pin_chain(move |this| {
            // SAFETY: The table is initialised and lives in its own allocation for as long as the
            // registration, which unregisters the driver before freeing it.
            unsafe {
                (*this.drv.get()).drv.dev_groups = (*this.table.get()).groups.as_ptr();
            }
            // SAFETY: `drv` is initialised and pinned; it stays registered until `drop`.
            to_result(unsafe {
                bindings::__dax_driver_register(this.drv.get(), module.as_ptr(), name.as_char_ptr())
            })
        })
    }

    fn table() -> Result<KBox<Opaque<AttrTable>>> {
        let all = <T::Attribute as Attribute>::ALL;
        if all.len() > MAX_ATTRIBUTES {
            return Err(EINVAL);
        }
        let table = KBox::new(Opaque::<AttrTable>::zeroed(), GFP_KERNEL)?;
        let t = table.get();
        // SAFETY: `t` points to a zeroed, exclusively owned `AttrTable` at a stable address; the
        // pointers written into it point into the same allocation or to `'static` names.
        unsafe {
            for (i, attr) in all.iter().enumerate() {
                let a = &raw mut (*t).attrs[i];
                (*a).attr.name = attr.name().as_char_ptr();
                (*a).attr.mode = if attr.write_only() { 0o200 } else { 0o444 };
                // As `sysfs_attr_init()` does for attributes that are not static.
                #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
                {
                    (*a).attr.key = crate::static_lock_class!().as_ptr();
                }
                if attr.write_only() {
                    (*a).__bindgen_anon_2.store = Some(Self::store_callback);
                } else {
                    (*a).__bindgen_anon_1.show = Some(Self::show_callback);
                }
                (*t).ptrs[i] = &raw mut (*a).attr;
            }
            (*t).group.name = T::ATTRIBUTE_DIR.as_char_ptr();
            (*t).group.__bindgen_anon_2.attrs = (&raw mut (*t).ptrs).cast();
            (*t).groups[0] = &raw const (*t).group;
        }
        Ok(table)
    }

    extern "C" fn claim_callback(dev: *mut bindings::dev_dax) -> bool {
        // SAFETY: The dax bus calls claim with a valid device.
        T::claim(unsafe { DevDax::from_raw(dev) })
    }

    extern "C" fn probe_callback(dev: *mut bindings::dev_dax) -> c_int {
        // SAFETY: The dax bus calls probe with a valid device.
        let dev = unsafe { DevDax::from_raw(dev) };
        from_result(|| {
            let data = T::probe(dev)?;
            let ptr = data.into_foreign();
            // SAFETY: The device is valid; its driver data is ours while bound.
            unsafe { bindings::dev_set_drvdata(dev.as_device().as_raw(), ptr) };
            Ok(0)
        })
    }

    extern "C" fn remove_callback(dev: *mut bindings::dev_dax) {
        // SAFETY: The dax bus calls remove with a valid, bound device.
        let dev = unsafe { DevDax::from_raw(dev) };
        // SAFETY: The device is bound to us, so probe stored the driver data.
        let ptr = unsafe { bindings::dev_get_drvdata(dev.as_device().as_raw()) };
        // SAFETY: `ptr` came from `into_foreign` in probe and is taken back once, here; the
        // driver core removed the sysfs attributes before calling remove.
        let data = unsafe { <Pin<KBox<T::Data>> as ForeignOwnable>::from_foreign(ptr) };
        // SAFETY: The device is valid; the driver data was taken back just above.
        unsafe { bindings::dev_set_drvdata(dev.as_device().as_raw(), core::ptr::null_mut()) };
        T::remove(dev, data);
    }

    /// Which of the driver's attributes `attr` is.
    ///
    /// # Safety
    ///
    /// `attr` must point to a valid attribute.
    unsafe fn which(attr: *const bindings::device_attribute) -> Option<T::Attribute> {
        // SAFETY: The caller passes a valid attribute.
        let name = unsafe { (*attr).attr.name };
        <T::Attribute as Attribute>::ALL
            .iter()
            .copied()
            .find(|a| core::ptr::eq(a.name().as_char_ptr(), name))
    }

    extern "C" fn store_callback(
        dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *const c_char,
        count: usize,
    ) -> isize {
        // SAFETY: sysfs calls store with a valid attribute of ours.
        let Some(which) = (unsafe { Self::which(attr) }) else {
            return EINVAL.to_errno() as isize;
        };
        // SAFETY: The attributes exist only while the device is bound, so the driver data is
        // set; the driver core removes them before calling remove.
        let ptr = unsafe { bindings::dev_get_drvdata(dev) };
        // SAFETY: `ptr` came from `into_foreign` and stays valid while the device is bound.
        let data = unsafe { <Pin<KBox<T::Data>> as ForeignOwnable>::borrow(ptr) };
        // SAFETY: sysfs hands store `count` bytes at `buf`, at most one page.
        let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
        match T::store(data, which, input) {
            Ok(()) => isize::try_from(count).unwrap_or(isize::MAX),
            Err(e) => e.to_errno() as isize,
        }
    }

    extern "C" fn show_callback(
        dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: sysfs calls show with a valid attribute of ours.
        let Some(which) = (unsafe { Self::which(attr) }) else {
            return EINVAL.to_errno() as isize;
        };
        // SAFETY: The attributes exist only while the device is bound, so the driver data is
        // set; the driver core removes them before calling remove.
        let ptr = unsafe { bindings::dev_get_drvdata(dev) };
        // SAFETY: `ptr` came from `into_foreign` and stays valid while the device is bound.
        let data = unsafe { <Pin<KBox<T::Data>> as ForeignOwnable>::borrow(ptr) };
        // SAFETY: sysfs hands show a buffer of one page.
        let page =
            unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), bindings::PAGE_SIZE) };
        let mut out = Formatter::new(page);
        match T::show(data, which, &mut out) {
            Ok(()) => out.bytes_written() as isize,
            Err(e) => e.to_errno() as isize,
        }
    }
}

#[pinned_drop]
impl<T: Driver> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the driver is registered; unregistering unbinds every
        // device before the attribute table is freed.
        unsafe { bindings::dax_driver_unregister(self.drv.get()) };
    }
}

#[macros::kunit_tests(rust_kernel_dax)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_inclusive() {
        let r = Range {
            start: 0x1000,
            end: 0x1fff,
        };
        assert_eq!(r.len(), 0x1000);
        assert!(!r.is_empty());
    }
}
