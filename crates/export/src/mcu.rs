//! Builds an export's C and runs it on quantized inputs: with the host's gcc (warnings as
//! errors, address and undefined-behaviour sanitizers) or cross-compiled for a Cortex-M4 and
//! run on QEMU's `mps2-an386` through semihosting, where `-icount shift=0` makes SysTick count
//! instructions. Needs `gcc`, or `gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::ExportError;

/// Where the C runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The host's gcc with the sanitizers.
    Host,
    /// `arm-none-eabi-gcc -mcpu=cortex-m4`, linked for a part with 256 KB of RAM (the link
    /// fails when the model does not fit), run on QEMU.
    CortexM4,
    /// The same, linked for all of QEMU's board (4 MB of RAM), for models too big for a part.
    Mps2Board,
}

/// One build of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Build {
    /// Where it runs.
    pub target: Target,
    /// `model_run_rows()` alone (`-DMODEL_ROWS_ONLY`): the smaller arena, no frame.
    pub rows: bool,
    /// The kernels' plain C path even where the DSP extension is there (`-DRP_NO_DSP`); on the
    /// host, without it, the DSP path runs on a C model of the ACLE intrinsics.
    pub plain: bool,
}

/// What a run printed and wrote.
#[derive(Debug)]
pub struct Run {
    /// Every input's outputs, concatenated.
    pub outputs: Vec<u8>,
    /// Instructions per input (Cortex-M4 only).
    pub instructions: Vec<u64>,
    /// The static arena the program reports.
    pub arena_bytes: usize,
    /// `(text, data, bss)` of the ELF (Cortex-M4 only).
    pub sizes: Option<[u64; 3]>,
}

fn failed(what: &str, dir: &Path, detail: String) -> ExportError {
    ExportError::Build { what: what.into(), dir: dir.to_path_buf(), detail }
}

fn output(what: &str, dir: &Path, cmd: &mut Command) -> Result<std::process::Output, ExportError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let what = format!("{what} ({program})");
    let out = cmd.current_dir(dir).output().map_err(|e| {
        let hint = if program == "gcc" {
            ""
        } else {
            " (apt install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
        };
        failed(&what, dir, format!("cannot start `{program}`: {e}{hint}"))
    })?;
    let what = what.as_str();
    if !out.status.success() {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        return Err(failed(what, dir, format!("{}:\n{text}", out.status)));
    }
    Ok(out)
}

fn sources(dir: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let src = dir.join("runtime/src");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&src)
        .map_err(ExportError::io(&src))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    v.sort();
    v.push(dir.join("runtime/examples/run_model.c"));
    v.push(dir.join("model_weights.c"));
    Ok(v)
}

/// Compiles the export in `dir` (written by [`crate::codegen`]); returns the program's path.
pub fn compile(dir: &Path, build: Build) -> Result<PathBuf, ExportError> {
    let name = format!(
        "run_model_{}{}{}",
        match build.target {
            Target::Host => "host",
            Target::CortexM4 => "m4",
            Target::Mps2Board => "board",
        },
        if build.rows { "_rows" } else { "" },
        if build.plain { "_plain" } else { "" }
    );
    let exe = dir.join(if build.target == Target::Host { name } else { format!("{name}.elf") });
    let mut cmd = match build.target {
        Target::Host => {
            let mut c = Command::new("gcc");
            c.args(["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-DRP_DSP_MODEL"]);
            c
        }
        Target::CortexM4 | Target::Mps2Board => {
            let script = if build.target == Target::CortexM4 { "cortex_m4_256k.ld" } else { "mps2_an386_4m.ld" };
            let mut c = Command::new("arm-none-eabi-gcc");
            c.args(["-DRP_CORTEX_M", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2"]);
            // What the program never calls (the other entry point, kernels of other models)
            // stays out of flash.
            c.args(["-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections"]);
            c.args(["-nostartfiles", "--specs=rdimon.specs", "-L"]).arg(dir.join("runtime/mcu"));
            c.arg("-T").arg(dir.join("runtime/mcu").join(script));
            c.arg(dir.join("runtime/mcu/startup_cortex_m4.c"));
            c
        }
    };
    cmd.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-I"]).arg(dir.join("runtime/include")).arg("-I").arg(dir);
    if build.rows {
        cmd.arg("-DMODEL_ROWS_ONLY");
    }
    if build.plain {
        cmd.arg("-DRP_NO_DSP");
    }
    cmd.args(sources(dir)?).arg("-o").arg(&exe);
    if build.target != Target::Host {
        cmd.args(["-lc", "-lrdimon"]);
    }
    output("compiling the C", dir, &mut cmd)?;
    Ok(exe)
}

/// `(text, data, bss)` from arm-none-eabi-size.
fn sizes(dir: &Path, elf: &Path) -> Result<[u64; 3], ExportError> {
    let out = output("arm-none-eabi-size", dir, Command::new("arm-none-eabi-size").arg(elf))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> =
        text.lines().nth(1).unwrap_or_default().split_whitespace().filter_map(|s| s.parse().ok()).collect();
    match v[..] {
        [text, data, bss, ..] => Ok([text, data, bss]),
        _ => Err(failed("arm-none-eabi-size", dir, format!("unexpected output {text:?}"))),
    }
}

/// Compiles the export in `dir` for `build` and runs it on `inputs` (quantized, each the
/// model's input size), through `input.bin` and `output.bin` in `dir`.
pub fn run(dir: &Path, build: Build, inputs: &[Vec<i8>]) -> Result<Run, ExportError> {
    let exe = compile(dir, build)?;
    let bytes: Vec<u8> = inputs.iter().flatten().map(|v| *v as u8).collect();
    let input = dir.join("input.bin");
    std::fs::write(&input, bytes).map_err(ExportError::io(&input))?;
    let out = match build.target {
        Target::Host => output("running the C", dir, &mut Command::new(&exe))?,
        Target::CortexM4 | Target::Mps2Board => {
            let mut qemu = Command::new("qemu-system-arm");
            qemu.args(["-M", "mps2-an386", "-nographic", "-icount", "shift=0"]);
            qemu.args(["-semihosting-config", "enable=on,target=native", "-kernel"]).arg(&exe);
            output("running on QEMU", dir, &mut qemu)?
        }
    };
    let console = String::from_utf8_lossy(&out.stdout);
    let instructions = console.lines().filter_map(|l| l.strip_prefix("instructions: ")?.parse().ok()).collect();
    let arena_bytes = console
        .lines()
        .find_map(|l| l.split("arena ").nth(1)?.strip_suffix(" bytes")?.parse().ok())
        .ok_or_else(|| failed("running the C", dir, format!("no arena size in {console:?}")))?;
    let path = dir.join("output.bin");
    let outputs = std::fs::read(&path).map_err(ExportError::io(&path))?;
    let sizes = if build.target == Target::Host { None } else { Some(sizes(dir, &exe)?) };
    Ok(Run { outputs, instructions, arena_bytes, sizes })
}
