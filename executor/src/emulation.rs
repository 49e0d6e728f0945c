//! Running another architecture's programs through QEMU user emulation,
//! as buildx does: the kernel's `binfmt_misc` hands a foreign ELF binary
//! to a registered interpreter (`qemu-aarch64-static`, ...).
//!
//! [`needs_emulation`] says whether a platform's programs need it on this
//! machine; [`Binfmt::ensure`] finds a usable handler or, when the user
//! allowed it (`kiln build --emulate`), registers Debian's
//! `qemu-user-static` interpreter and says so once.
//!
//! A handler is usable when it is enabled, matches the platform's ELF
//! header (executables and position-independent ones) and has the `F`
//! (fix-binary) flag: the kernel then opens the interpreter when it is
//! registered, so it runs in any mount namespace and under any root (the
//! built-in sandbox, chroot, runc, crun). Without `F` the kernel looks the
//! interpreter up inside the build's root, where it is not.
//!
//! `KILN_BINFMT_MISC` names another directory to read (and write
//! `register` in) instead of `/proc/sys/fs/binfmt_misc`, to test the
//! detection and its messages without touching the host's handlers.

use kiln_oci::Platform;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where the kernel's `binfmt_misc` is mounted.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// An emulation that cannot be had, or a handler that cannot be read or
/// written. Each message is one line naming the platform and the way out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulationError {
    /// No QEMU user emulator is known for the platform.
    #[error("{platform} programs do not run on this {host} machine and kiln knows no QEMU emulator for them (it emulates {known})")]
    Unsupported {
        /// The platform asked for.
        platform: String,
        /// This machine's platform.
        host: String,
        /// The platforms kiln can emulate.
        known: String,
    },
    /// No enabled handler, and registering one was not allowed.
    #[error("{platform} programs need QEMU emulation and binfmt_misc has no handler for {qemu}: {remedy}")]
    NoHandler {
        /// The platform asked for.
        platform: String,
        /// QEMU's name of the handler (`qemu-aarch64`).
        qemu: String,
        /// What to run or install.
        remedy: String,
    },
    /// A handler exists but lacks the `F` flag.
    #[error("{platform} programs need QEMU emulation, and binfmt_misc's handler {entry} lacks the F (fix-binary) flag, so its interpreter {interpreter} is not found inside the build's root: remove it (echo -1 > {dir}/{entry}) and rerun with `kiln build --emulate`, or register it with the F flag")]
    NoFixBinary {
        /// The platform asked for.
        platform: String,
        /// The handler's entry name.
        entry: String,
        /// Its interpreter.
        interpreter: String,
        /// The binfmt_misc directory.
        dir: String,
    },
    /// `--emulate` as a user who may not register handlers.
    #[error("--emulate: registering QEMU emulation for {platform} with binfmt_misc needs root; as root run `apt-get install qemu-user-static binfmt-support` once")]
    NotRoot {
        /// The platform asked for.
        platform: String,
    },
    /// `--emulate` without the interpreter installed.
    #[error("--emulate: {platform} needs the QEMU interpreter {path}, which is missing: run `apt-get install qemu-user-static`")]
    NoInterpreter {
        /// The platform asked for.
        platform: String,
        /// The static interpreter looked for.
        path: String,
    },
    /// binfmt_misc could not be mounted.
    #[error("--emulate: mounting binfmt_misc on {dir}: {error}{hint}")]
    Mount {
        /// Where.
        dir: String,
        /// Why not.
        error: std::io::Error,
        /// What to do instead, with its separator (may be empty).
        hint: String,
    },
    /// A handler could not be registered.
    #[error("--emulate: registering {qemu} for {platform} in {path}: {error}{hint}")]
    Register {
        /// The platform asked for.
        platform: String,
        /// The handler's name.
        qemu: String,
        /// The `register` file.
        path: String,
        /// Why not.
        error: std::io::Error,
        /// What to do instead, with its separator (may be empty).
        hint: String,
    },
}

/// One platform kiln can emulate: its QEMU name and its ELF header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Arch {
    /// The OCI architecture (`arm64`).
    oci: &'static str,
    /// QEMU's name (`aarch64`): `qemu-aarch64-static`, entry `qemu-aarch64`.
    qemu: &'static str,
    /// `EI_CLASS`: 1 for 32-bit, 2 for 64-bit.
    class: u8,
    /// `EI_DATA`: 1 for little-endian, 2 for big-endian.
    data: u8,
    /// `e_machine`.
    machine: u16,
}

/// The platforms Debian's `qemu-user-static` emulates that images are
/// published for (ELF machine numbers from the ELF specification).
const ARCHES: &[Arch] = &[
    Arch {
        oci: "amd64",
        qemu: "x86_64",
        class: 2,
        data: 1,
        machine: 62,
    },
    Arch {
        oci: "arm64",
        qemu: "aarch64",
        class: 2,
        data: 1,
        machine: 183,
    },
    Arch {
        oci: "arm",
        qemu: "arm",
        class: 1,
        data: 1,
        machine: 40,
    },
    Arch {
        oci: "386",
        qemu: "i386",
        class: 1,
        data: 1,
        machine: 3,
    },
    Arch {
        oci: "ppc64le",
        qemu: "ppc64le",
        class: 2,
        data: 1,
        machine: 21,
    },
    Arch {
        oci: "s390x",
        qemu: "s390x",
        class: 2,
        data: 2,
        machine: 22,
    },
    Arch {
        oci: "riscv64",
        qemu: "riscv64",
        class: 2,
        data: 1,
        machine: 243,
    },
    Arch {
        oci: "mips64le",
        qemu: "mips64el",
        class: 2,
        data: 1,
        machine: 8,
    },
    Arch {
        oci: "loong64",
        qemu: "loongarch64",
        class: 2,
        data: 1,
        machine: 258,
    },
];

/// `ET_EXEC` and `ET_DYN`: a handler must take both (static executables
/// and position-independent ones).
const ELF_TYPES: [u16; 2] = [2, 3];

impl Arch {
    fn of(platform: &Platform) -> Option<Arch> {
        ARCHES
            .iter()
            .find(|a| a.oci == platform.architecture)
            .copied()
    }

    /// The first 20 bytes of an ELF file of this machine and type:
    /// `e_ident`, `e_type`, `e_machine`.
    fn header(&self, elf_type: u16) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = self.class;
        h[5] = self.data;
        h[6] = 1;
        let (t, m) = if self.data == 2 {
            (elf_type.to_be_bytes(), self.machine.to_be_bytes())
        } else {
            (elf_type.to_le_bytes(), self.machine.to_le_bytes())
        };
        h[16..18].copy_from_slice(&t);
        h[18..20].copy_from_slice(&m);
        h
    }

    /// The mask of a registration: the OS ABI byte is ignored, and the
    /// low bit of `e_type` so `ET_EXEC` and `ET_DYN` both match.
    fn mask(&self) -> [u8; 20] {
        let mut m = [0xffu8; 20];
        m[7] = 0;
        if self.data == 2 {
            m[17] = 0xfe;
        } else {
            m[16] = 0xfe;
        }
        m
    }

    /// The handler's entry name (`qemu-aarch64`), as Debian and buildx
    /// name it.
    fn entry(&self) -> String {
        format!("qemu-{}", self.qemu)
    }
}

/// The platforms kiln can emulate, for messages.
fn known() -> String {
    ARCHES
        .iter()
        .map(|a| format!("linux/{}", a.oci))
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when `platform`'s programs do not run natively on `host` and so
/// need an emulator. 32-bit x86 runs on x86_64 kernels (as buildx lists
/// `linux/386` native on amd64).
pub fn needs_emulation(platform: &Platform, host: &Platform) -> bool {
    if platform.os != "linux" || platform.architecture == host.architecture {
        return false;
    }
    !(host.architecture == "amd64" && platform.architecture == "386")
}

/// One `binfmt_misc` entry, as the kernel shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Entry {
    name: String,
    enabled: bool,
    interpreter: String,
    flags: String,
    offset: usize,
    magic: Vec<u8>,
    mask: Option<Vec<u8>>,
}

impl Entry {
    /// Reads an entry file's text (`enabled`, `interpreter ...`,
    /// `flags: ...`, `offset N`, `magic HEX`, `mask HEX`); `None` for an
    /// extension entry or one that cannot be read.
    fn parse(name: &str, text: &str) -> Option<Entry> {
        let mut e = Entry {
            name: name.to_string(),
            ..Entry::default()
        };
        for line in text.lines().take(16) {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "enabled" => e.enabled = true,
                "disabled" => e.enabled = false,
                "interpreter" => e.interpreter = value.to_string(),
                "flags:" => e.flags = value.to_string(),
                "offset" => e.offset = value.trim().parse().ok()?,
                "magic" => e.magic = hex(value)?,
                "mask" => e.mask = Some(hex(value)?),
                "extension" => return None,
                _ => {}
            }
        }
        (!e.magic.is_empty()).then_some(e)
    }

    /// True when this entry takes `header` (a file's first bytes).
    fn matches(&self, header: &[u8]) -> bool {
        let Some(window) = header.get(self.offset..self.offset + self.magic.len()) else {
            return false;
        };
        window
            .iter()
            .zip(&self.magic)
            .enumerate()
            .all(|(i, (b, m))| {
                let mask = self
                    .mask
                    .as_ref()
                    .and_then(|k| k.get(i))
                    .copied()
                    .unwrap_or(0xff);
                b & mask == m & mask
            })
    }

    /// True when it handles every ELF type of `arch`.
    fn handles(&self, arch: &Arch) -> bool {
        ELF_TYPES.iter().all(|t| self.matches(&arch.header(*t)))
    }
}

/// Hex digits (as the kernel prints magic and mask) to bytes.
fn hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) || text.len() > 256 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `\xNN` for every byte: the form `register` takes (and never a `:`).
fn escaped(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

/// A `binfmt_misc` directory: the kernel's, or a stand-in for tests.
#[derive(Debug, Clone)]
pub struct Binfmt {
    dir: PathBuf,
    /// The kernel's own mount point (it may be mounted by `ensure`).
    kernel: bool,
    /// Where the static interpreters are looked for.
    interpreters: Vec<PathBuf>,
}

/// Platforms already found usable in this process (checked once), and
/// the lock that makes registration happen once.
static READY: Mutex<Option<HashSet<String>>> = Mutex::new(None);

impl Binfmt {
    /// The kernel's `binfmt_misc`, or the directory `KILN_BINFMT_MISC`
    /// names.
    pub fn from_env() -> Binfmt {
        match std::env::var_os("KILN_BINFMT_MISC").filter(|v| !v.is_empty()) {
            Some(dir) => Binfmt::at(PathBuf::from(dir)),
            None => Binfmt {
                dir: PathBuf::from(BINFMT_MISC),
                kernel: true,
                interpreters: vec![
                    PathBuf::from("/usr/libexec/qemu-binfmt"),
                    PathBuf::from("/usr/bin"),
                ],
            },
        }
    }

    /// A stand-in directory: nothing is mounted, and the interpreters are
    /// looked for in the same places as the kernel's.
    pub fn at(dir: PathBuf) -> Binfmt {
        Binfmt {
            dir,
            kernel: false,
            interpreters: vec![
                PathBuf::from("/usr/libexec/qemu-binfmt"),
                PathBuf::from("/usr/bin"),
            ],
        }
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes sure `platform`'s programs run here: nothing when they run
    /// natively or a usable handler exists; with `register`, registers
    /// QEMU's static interpreter with the `F` flag (mounting binfmt_misc
    /// first if it is not) and returns the one line saying so. Checked
    /// once per platform and process, so concurrent steps register once.
    ///
    /// # Errors
    /// An [`EmulationError`] naming the platform and what to install or
    /// run.
    pub fn ensure(
        &self,
        platform: &Platform,
        register: bool,
    ) -> Result<Option<String>, EmulationError> {
        let host = Platform::host();
        if !needs_emulation(platform, &host) {
            return Ok(None);
        }
        let shown = platform.short_string();
        let arch = Arch::of(platform).ok_or_else(|| EmulationError::Unsupported {
            platform: shown.clone(),
            host: host.short_string(),
            known: known(),
        })?;
        let key = format!("{}\0{}", self.dir.display(), arch.qemu);
        let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
        if ready.as_ref().is_some_and(|r| r.contains(&key)) {
            return Ok(None);
        }
        let note = self.find_or_register(&arch, &shown, register)?;
        ready.get_or_insert_with(HashSet::new).insert(key);
        Ok(note)
    }

    fn find_or_register(
        &self,
        arch: &Arch,
        shown: &str,
        register: bool,
    ) -> Result<Option<String>, EmulationError> {
        let entries = self.entries();
        if entries.iter().any(|e| e.handles(arch) && has_fix_binary(e)) {
            return Ok(None);
        }
        if let Some(e) = entries.iter().find(|e| e.handles(arch)) {
            return Err(EmulationError::NoFixBinary {
                platform: shown.to_string(),
                entry: e.name.clone(),
                interpreter: e.interpreter.clone(),
                dir: self.dir.display().to_string(),
            });
        }
        let interpreter = self.interpreter(arch);
        if !register {
            let remedy = match &interpreter {
                Some(_) => format!(
                    "rerun as root with `kiln build --emulate` (it registers {} with binfmt_misc), or run `apt-get install binfmt-support`",
                    interpreter.as_ref().map(|(p, _)| p.display().to_string()).unwrap_or_default()
                ),
                None => "run `apt-get install qemu-user-static binfmt-support`, or install qemu-user-static and rerun as root with `kiln build --emulate`".to_string(),
            };
            return Err(EmulationError::NoHandler {
                platform: shown.to_string(),
                qemu: arch.entry(),
                remedy,
            });
        }
        if self.kernel && unsafe { libc::geteuid() } != 0 {
            return Err(EmulationError::NotRoot {
                platform: shown.to_string(),
            });
        }
        let Some((path, flags)) = interpreter else {
            return Err(EmulationError::NoInterpreter {
                platform: shown.to_string(),
                path: format!("/usr/bin/qemu-{}-static", arch.qemu),
            });
        };
        let mut mounted = false;
        let register_file = self.dir.join("register");
        if self.kernel && !register_file.exists() {
            mount_binfmt_misc(&self.dir)?;
            mounted = true;
        }
        let line = format!(
            ":{}:M::{}:{}:{}:{}",
            arch.entry(),
            escaped(&arch.header(ELF_TYPES[0])),
            escaped(&arch.mask()),
            path.display(),
            flags
        );
        std::fs::OpenOptions::new()
            .write(true)
            .open(&register_file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()))
            .map_err(|error| EmulationError::Register {
                platform: shown.to_string(),
                qemu: arch.entry(),
                path: register_file.display().to_string(),
                hint: match error.raw_os_error() {
                    Some(libc::EEXIST) => format!(
                        "; a disabled handler has that name: enable it (echo 1 > {0}/{1}) or remove it (echo -1 > {0}/{1})",
                        self.dir.display(),
                        arch.entry()
                    ),
                    _ => privilege_hint(&error),
                },
                error,
            })?;
        Ok(Some(format!(
            "registered QEMU emulation for {shown} (binfmt_misc {}{})",
            arch.entry(),
            if mounted {
                format!(", mounted on {}", self.dir.display())
            } else {
                String::new()
            }
        )))
    }

    /// The static interpreter for `arch` and its flags: Debian's
    /// `-binfmt-P` link keeps argv\[0\] (flag `P`), the plain binary
    /// does not.
    fn interpreter(&self, arch: &Arch) -> Option<(PathBuf, &'static str)> {
        for dir in &self.interpreters {
            let preserving = dir.join(format!("{}-binfmt-P", arch.qemu));
            if dir.ends_with("qemu-binfmt") && preserving.is_file() {
                return Some((preserving, "PF"));
            }
            let plain = dir.join(format!("qemu-{}-static", arch.qemu));
            if plain.is_file() {
                return Some((plain, "F"));
            }
        }
        None
    }

    /// The enabled handlers (none when binfmt_misc is not mounted or is
    /// disabled as a whole).
    fn entries(&self) -> Vec<Entry> {
        if std::fs::read_to_string(self.dir.join("status")).is_ok_and(|s| s.trim() == "disabled") {
            return Vec::new();
        }
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut entries = Vec::new();
        for item in dir.flatten().take(1024) {
            let name = item.file_name().to_string_lossy().into_owned();
            if name == "register" || name == "status" {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(item.path()) else {
                continue;
            };
            if let Some(e) = Entry::parse(&name, &text).filter(|e| e.enabled) {
                entries.push(e);
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }
}

/// What to do when the kernel refused a registration for lack of
/// privilege: kiln runs rootless or in a container.
fn privilege_hint(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::EPERM | libc::EACCES | libc::EROFS) => "; only root of the host may register handlers (not a rootless kiln or one in a container): register them on the host, e.g. as root `apt-get install qemu-user-static binfmt-support`".to_string(),
        _ => String::new(),
    }
}

fn has_fix_binary(e: &Entry) -> bool {
    e.flags.contains('F')
}

/// Mounts the kernel's binfmt_misc on `dir`.
fn mount_binfmt_misc(dir: &Path) -> Result<(), EmulationError> {
    use std::os::unix::ffi::OsStrExt;
    let err = |error: std::io::Error| EmulationError::Mount {
        dir: dir.display().to_string(),
        hint: privilege_hint(&error),
        error,
    };
    let target = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| err(std::io::Error::from(std::io::ErrorKind::InvalidInput)))?;
    let kind = c"binfmt_misc";
    // SAFETY: every pointer is a valid NUL-terminated string that lives
    // across the call; no data argument.
    let rc = unsafe {
        libc::mount(
            kind.as_ptr(),
            target.as_ptr(),
            kind.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().expect("platform")
    }

    #[test]
    fn which_platforms_need_an_emulator() {
        let amd64 = p("linux/amd64");
        assert!(needs_emulation(&p("linux/arm64"), &amd64));
        assert!(needs_emulation(&p("linux/arm/v7"), &amd64));
        assert!(needs_emulation(&p("linux/s390x"), &amd64));
        assert!(!needs_emulation(&p("linux/amd64"), &amd64));
        assert!(!needs_emulation(&p("linux/386"), &amd64));
        assert!(needs_emulation(&p("linux/amd64"), &p("linux/arm64")));
        let names: Vec<_> = ["arm64", "arm/v7", "386", "ppc64le", "s390x", "riscv64"]
            .iter()
            .map(|a| Arch::of(&p(&format!("linux/{a}"))).map(|a| a.qemu))
            .collect();
        assert_eq!(
            names,
            [
                Some("aarch64"),
                Some("arm"),
                Some("i386"),
                Some("ppc64le"),
                Some("s390x"),
                Some("riscv64")
            ]
        );
        assert_eq!(Arch::of(&p("linux/sparc64")), None);
    }

    /// Debian's qemu-user-static registers these bytes (its binfmt.d
    /// file): the header and mask made here are the same.
    #[test]
    fn the_registration_matches_debians() {
        let arm64 = Arch::of(&p("linux/arm64")).expect("arm64");
        assert_eq!(
            escaped(&arch_magic(&arm64)),
            "\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00"
        );
        assert_eq!(
            escaped(&arm64.mask()),
            "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff"
        );
        let s390x = Arch::of(&p("linux/s390x")).expect("s390x");
        assert_eq!(&s390x.header(2)[16..], &[0, 2, 0, 22]);
        assert_eq!(&s390x.mask()[16..], &[0xff, 0xfe, 0xff, 0xff]);
    }

    fn arch_magic(a: &Arch) -> [u8; 20] {
        a.header(ELF_TYPES[0])
    }

    /// A stand-in directory whose interpreters are looked for in `bin`.
    fn stand_in(dir: &Path, bin: &Path) -> Binfmt {
        std::fs::write(dir.join("register"), "").expect("register");
        Binfmt {
            interpreters: vec![bin.to_path_buf()],
            ..Binfmt::at(dir.to_path_buf())
        }
    }

    #[test]
    fn ensure_registers_once_and_says_what_is_missing() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (dir, bin) = (tmp.path().join("binfmt"), tmp.path().join("bin"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let binfmt = stand_in(&dir, &bin);
        let arm64 = p("linux/arm64");
        // No interpreter installed.
        let err = binfmt.ensure(&arm64, true).expect_err("no qemu");
        assert!(
            matches!(&err, EmulationError::NoInterpreter { path, .. } if path == "/usr/bin/qemu-aarch64-static"),
            "{err}"
        );
        let err = binfmt.ensure(&arm64, false).expect_err("no handler");
        assert!(
            err.to_string()
                .contains("apt-get install qemu-user-static binfmt-support"),
            "{err}"
        );

        std::fs::write(bin.join("qemu-aarch64-static"), "").expect("qemu");
        let err = binfmt.ensure(&arm64, false).expect_err("not allowed");
        assert!(err.to_string().contains("kiln build --emulate"), "{err}");
        let note = binfmt.ensure(&arm64, true).expect("registers");
        assert_eq!(
            note.as_deref(),
            Some("registered QEMU emulation for linux/arm64 (binfmt_misc qemu-aarch64)")
        );
        let line = std::fs::read_to_string(dir.join("register")).expect("register");
        assert!(
            line.starts_with(":qemu-aarch64:M::\\x7f\\x45\\x4c\\x46"),
            "{line}"
        );
        assert!(
            line.ends_with(&format!(":{}:F", bin.join("qemu-aarch64-static").display())),
            "{line}"
        );
        // Once per process: the next steps say nothing and write nothing.
        std::fs::write(dir.join("register"), "").expect("register");
        assert_eq!(binfmt.ensure(&arm64, true).expect("ready"), None);
        assert_eq!(
            std::fs::read_to_string(dir.join("register")).expect("register"),
            ""
        );
        // Native platforms need nothing.
        assert_eq!(
            binfmt.ensure(&Platform::host(), false).expect("native"),
            None
        );
    }

    #[test]
    fn refusals_for_lack_of_privilege_say_where_to_register() {
        for errno in [libc::EPERM, libc::EACCES, libc::EROFS] {
            let hint = privilege_hint(&std::io::Error::from_raw_os_error(errno));
            assert!(hint.contains("register them on the host"), "{hint}");
        }
        assert_eq!(
            privilege_hint(&std::io::Error::from_raw_os_error(libc::EINVAL)),
            ""
        );
    }

    #[test]
    fn entries_are_read_as_the_kernel_prints_them() {
        let text = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
        let e = Entry::parse("qemu-aarch64", text).expect("entry");
        let arm64 = Arch::of(&p("linux/arm64")).expect("arm64");
        let riscv = Arch::of(&p("linux/riscv64")).expect("riscv64");
        assert!(e.enabled && has_fix_binary(&e));
        assert!(e.handles(&arm64));
        assert!(!e.handles(&riscv));
        // Without a mask every byte counts: ET_DYN binaries do not match.
        let exec_only = Entry {
            mask: None,
            ..e.clone()
        };
        assert!(!exec_only.handles(&arm64));
        assert_eq!(
            Entry::parse(
                "python",
                "enabled\ninterpreter /usr/bin/python3\nflags: \nextension .py\n"
            ),
            None
        );
        assert_eq!(Entry::parse("bad", "enabled\nmagic 7g\n"), None);
    }
}
