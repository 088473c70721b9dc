//! Running the compilers: Debian's `xtensa-lx106-elf-gcc` for the ESP8266 and
//! the host's `cc` for the reference builds, each output cached under a
//! digest of everything that goes into it (compiler version, flags, sources,
//! headers, linker scripts), so a repeated test run compiles nothing.
//! Outputs are written under a temporary name and renamed into place, so
//! concurrent builds of the same program (parallel tests) never see half a
//! file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use md5::{Digest, Md5};

use crate::BuildError;

/// The command that installs Debian's Xtensa toolchain; the error for a missing toolchain quotes it.
pub const TOOLCHAIN_INSTALL_COMMAND: &str =
    "apt-get install -y gcc-xtensa-lx106 binutils-xtensa-lx106";

/// Which compiler a build uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The ESP8266: `<prefix>gcc`, linked with libgcc and the ROM's symbols.
    Lx106,
    /// The machine running the tests.
    Host,
}

/// One compiler invocation: sources in, one executable out.
pub(crate) struct Recipe<'a> {
    pub target: Target,
    pub flags: Vec<&'static str>,
    pub sources: Vec<PathBuf>,
    /// Where the headers are; every `.h` there counts towards the cache digest.
    pub include_dir: PathBuf,
    /// The linker script (lx106 only), found in the ld/ directory with the scripts it includes.
    pub linker_script: Option<&'a str>,
    /// The directory the output and its digest go to.
    pub out_dir: PathBuf,
    /// The output file's name in `out_dir`.
    pub output_name: String,
}

/// The compilers' names.
#[derive(Debug, Clone)]
pub(crate) struct Compilers {
    pub cross_prefix: String,
    pub host_cc: String,
}

impl Compilers {
    fn cross_tool(&self, tool: &str) -> String {
        format!("{}{tool}", self.cross_prefix)
    }

    /// The version line of each tool the target needs; fails with the install hint when one is missing.
    fn identify(&self, target: Target) -> Result<String, BuildError> {
        match target {
            Target::Lx106 => {
                let gcc = self.cross_tool("gcc");
                let ld = self.cross_tool("ld");
                let gcc_version =
                    tool_version(&gcc).map_err(|source| BuildError::ToolchainMissing {
                        program: gcc.clone(),
                        source,
                    })?;
                let ld_version =
                    tool_version(&ld).map_err(|source| BuildError::ToolchainMissing {
                        program: ld.clone(),
                        source,
                    })?;
                Ok(format!("{gcc_version}\n{ld_version}"))
            }
            Target::Host => {
                tool_version(&self.host_cc).map_err(|source| BuildError::HostCompilerMissing {
                    program: self.host_cc.clone(),
                    source,
                })
            }
        }
    }

    /// Builds the recipe's output unless the one on disk was built from the same inputs; returns its path.
    pub fn build(&self, recipe: &Recipe<'_>, ld_dir: &Path) -> Result<PathBuf, BuildError> {
        let compiler_id = self.identify(recipe.target)?;
        let digest = recipe.digest(&compiler_id, ld_dir)?;
        let output = recipe.out_dir.join(&recipe.output_name);
        let stamp = recipe
            .out_dir
            .join(format!("{}.inputs-md5", recipe.output_name));
        if output.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(&digest) {
            return Ok(output);
        }
        fs::create_dir_all(&recipe.out_dir).map_err(|source| BuildError::Io {
            path: recipe.out_dir.clone(),
            source,
        })?;
        let temporary = unique_temporary(&output);
        let mut command = match recipe.target {
            Target::Lx106 => Command::new(self.cross_tool("gcc")),
            Target::Host => Command::new(&self.host_cc),
        };
        command
            .args(&recipe.flags)
            .arg("-I")
            .arg(&recipe.include_dir);
        if let Some(script) = recipe.linker_script {
            command.arg("-L").arg(ld_dir).arg("-T").arg(script);
        }
        command.args(&recipe.sources);
        if recipe.target == Target::Lx106 {
            command.arg("-lgcc");
        }
        command.arg("-o").arg(&temporary);
        let result = run(&mut command, recipe.target, self)?;
        if !result.status.success() {
            // A failed gcc may leave a partial output behind.
            let _ = fs::remove_file(&temporary);
            return Err(BuildError::CompileFailed {
                command: describe(&command),
                status: result.status,
                stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
            });
        }
        rename(&temporary, &output)?;
        let temporary_stamp = unique_temporary(&stamp);
        fs::write(&temporary_stamp, &digest).map_err(|source| BuildError::Io {
            path: temporary_stamp.clone(),
            source,
        })?;
        rename(&temporary_stamp, &stamp)?;
        Ok(output)
    }
}

impl Recipe<'_> {
    fn digest(&self, compiler_id: &str, ld_dir: &Path) -> Result<String, BuildError> {
        let mut inputs: Vec<PathBuf> = self.sources.clone();
        inputs.extend(files_with_extension(&self.include_dir, "h")?);
        if self.linker_script.is_some() {
            inputs.extend(files_with_extension(ld_dir, "ld")?);
        }
        let mut hasher = Md5::new();
        hasher.update(compiler_id.as_bytes());
        for flag in &self.flags {
            hasher.update([0]);
            hasher.update(flag.as_bytes());
        }
        if let Some(script) = self.linker_script {
            hasher.update([1]);
            hasher.update(script.as_bytes());
        }
        for input in inputs {
            let contents = fs::read(&input).map_err(|source| BuildError::Io {
                path: input.clone(),
                source,
            })?;
            hasher.update([2]);
            hasher.update(input.to_string_lossy().as_bytes());
            hasher.update((contents.len() as u64).to_le_bytes());
            hasher.update(&contents);
        }
        Ok(hex::encode(hasher.finalize()))
    }
}

fn tool_version(program: &str) -> io::Result<String> {
    let output = Command::new(program).arg("--version").output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "`{program} --version` exited with {}",
            output.status
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

fn run(command: &mut Command, target: Target, compilers: &Compilers) -> Result<Output, BuildError> {
    command.output().map_err(|source| match target {
        Target::Lx106 => BuildError::ToolchainMissing {
            program: compilers.cross_tool("gcc"),
            source,
        },
        Target::Host => BuildError::HostCompilerMissing {
            program: compilers.host_cc.clone(),
            source,
        },
    })
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn files_with_extension(
    dir: &Path,
    extension: &str,
) -> Result<Vec<PathBuf>, BuildError> {
    let entries = fs::read_dir(dir).map_err(|source| BuildError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| BuildError::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|found| found == extension) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A name next to `path` that no other process or thread uses at the same time.
pub(crate) fn unique_temporary(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}-{serial}", std::process::id()));
    path.with_file_name(name)
}

pub(crate) fn rename(from: &Path, to: &Path) -> Result<(), BuildError> {
    fs::rename(from, to).map_err(|source| BuildError::Io {
        path: to.to_owned(),
        source,
    })
}
