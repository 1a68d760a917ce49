//! CMake and pkg-config packaging: the top-level CMakeLists.txt builds librrpc (through
//! cargo) and examples-c/, installs a library with the right soname, a header, a CMake
//! package and rrpc.pc, and all three ways of consuming it work: find_package,
//! pkg-config (shared and static) and add_subdirectory.

mod common;

use common::cmake::{self, c_build, run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// librrpc.so.0.<minor> before 1.0, librrpc.so.<major> after (as build.rs sets it).
fn soname() -> String {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let minor = env!("CARGO_PKG_VERSION_MINOR");
    if major == "0" {
        format!("librrpc.so.0.{minor}")
    } else {
        format!("librrpc.so.{major}")
    }
}

fn have_tools(tools: &[&str]) -> bool {
    tools.iter().all(|t| common::require_tool(t))
}

/// Whether `tool` is on PATH, without require_tool's CI rule (readelf and objdump are
/// alternatives: either will do).
fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A fresh, empty scratch directory.
fn fresh_dir(name: &str) -> PathBuf {
    let d = common::scratch_dir(name);
    std::fs::remove_dir_all(&d).expect("clear scratch dir");
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// SONAME and NEEDED entries of an ELF file's dynamic section (readelf, else objdump).
struct Dynamic {
    soname: Option<String>,
    needed: Vec<String>,
    raw: String,
}

fn dynamic(path: &Path) -> Dynamic {
    let mut d = Dynamic {
        soname: None,
        needed: Vec::new(),
        raw: String::new(),
    };
    if on_path("readelf") {
        let out = run(Command::new("readelf").arg("-d").arg(path));
        d.raw = String::from_utf8_lossy(&out.stdout).into_owned();
        // " 0x...01 (NEEDED)  Shared library: [libc.so.6]"
        for line in d.raw.lines() {
            let value = line
                .split_once('[')
                .and_then(|(_, rest)| rest.split_once(']'))
                .map(|(v, _)| v.to_owned());
            if line.contains("(NEEDED)") {
                d.needed.extend(value);
            } else if line.contains("(SONAME)") {
                d.soname = value;
            }
        }
    } else if on_path("objdump") {
        let out = run(Command::new("objdump").arg("-p").arg(path));
        d.raw = String::from_utf8_lossy(&out.stdout).into_owned();
        // "  NEEDED               libc.so.6"
        for line in d.raw.lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("NEEDED"), Some(v)) => d.needed.push(v.to_owned()),
                (Some("SONAME"), Some(v)) => d.soname = Some(v.to_owned()),
                _ => {}
            }
        }
    } else {
        panic!("neither readelf nor objdump is installed");
    }
    d
}

/// Runs a consumer executable and checks it printed "consumer ok <VERSION>".
/// `lib_dir`: LD_LIBRARY_PATH for it; None runs it with LD_LIBRARY_PATH unset.
fn run_consumer(exe: &Path, lib_dir: Option<&Path>) {
    let mut cmd = Command::new(exe);
    cmd.env_remove("LD_LIBRARY_PATH");
    if let Some(dir) = lib_dir {
        cmd.env("LD_LIBRARY_PATH", dir);
    }
    let out = run(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim_end(),
        format!("consumer ok {VERSION}"),
        "unexpected output from {}:\n{}",
        exe.display(),
        cmake::describe(&cmd, &out)
    );
}

fn assert_needs_shared_rrpc(exe: &Path) {
    let d = dynamic(exe);
    assert!(
        d.needed.contains(&soname()),
        "{} should need {}; dynamic section:\n{}",
        exe.display(),
        soname(),
        d.raw
    );
}

fn assert_no_shared_rrpc(exe: &Path) {
    let d = dynamic(exe);
    assert!(
        !d.raw.is_empty() && !d.needed.iter().any(|n| n.starts_with("librrpc")),
        "{} is linked statically and must not need librrpc.so; dynamic section:\n{}",
        exe.display(),
        d.raw
    );
}

/// `cmake --install` of the shared build into a fresh prefix, once per process.
fn installed_prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let build = c_build();
        let prefix = fresh_dir("packaging-prefix");
        // Another test binary may be reconfiguring the shared build dir right now.
        let _lock = cmake::FileLock::exclusive(&cmake::repo_root().join("target/cmake-test.lock"))
            .unwrap_or_else(|e| panic!("{e}"));
        run(Command::new("cmake")
            .arg("--install")
            .arg(build)
            .arg("--prefix")
            .arg(&prefix));
        prefix
    })
}

#[test]
fn cmake_builds_examples_and_library_with_soname() {
    if !have_tools(&["cmake", "cc"]) {
        return;
    }
    let build = c_build();

    // CMake gave cargo its own target dir, in the profile's directory.
    let cargo_so = cmake::cargo_target_dir().join("release/librrpc.so");
    assert!(cargo_so.is_file(), "{} is missing", cargo_so.display());

    let lib = build.join("lib/librrpc.so");
    let d = dynamic(&lib);
    assert_eq!(
        d.soname.as_deref(),
        Some(soname().as_str()),
        "wrong SONAME in {}:\n{}",
        lib.display(),
        d.raw
    );
    assert!(
        build.join("lib").join(soname()).exists(),
        "the build tree has no {} for the examples to load",
        soname()
    );
    assert!(
        build.join("lib/librrpc.a").is_file(),
        "lib/librrpc.a is missing"
    );

    for (name, usage) in [
        ("echo_device", "usage: echo_device"),
        ("deferred_reply", "usage: deferred_reply"),
    ] {
        let exe = cmake::example(name);
        assert_eq!(exe, build.join("examples-c").join(name));
        assert_needs_shared_rrpc(&exe);
        // Without arguments both print their usage and exit 2; that they start at all
        // without LD_LIBRARY_PATH shows the build-tree RPATH finds librrpc.
        let mut cmd = Command::new(&exe);
        cmd.env_remove("LD_LIBRARY_PATH");
        let out = cmd.output().expect("run the example");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(2) && stderr.contains(usage),
            "{name} without arguments should print its usage and exit 2:\n{}",
            cmake::describe(&cmd, &out)
        );
    }
}

#[test]
fn install_then_find_package_shared_and_static() {
    if !have_tools(&["cmake", "cc"]) {
        return;
    }
    let prefix = installed_prefix();
    let libdir = prefix.join("lib");
    let real = format!("librrpc.so.{VERSION}");

    // The layout: the real file, the soname link, the dev link, and the rest.
    let real_path = libdir.join(&real);
    let meta = std::fs::symlink_metadata(&real_path)
        .unwrap_or_else(|e| panic!("{}: {e}", real_path.display()));
    assert!(
        meta.file_type().is_file(),
        "{} is not a regular file",
        real_path.display()
    );
    for (link, target) in [
        (soname(), real.clone()),
        ("librrpc.so".to_owned(), soname()),
    ] {
        let link_path = libdir.join(&link);
        let got = std::fs::read_link(&link_path)
            .unwrap_or_else(|e| panic!("{} is not a symlink: {e}", link_path.display()));
        assert_eq!(
            got,
            Path::new(&target),
            "{} points to the wrong file",
            link_path.display()
        );
    }
    for f in [
        "lib/librrpc.a",
        "include/rrpc.h",
        "lib/cmake/rrpc/rrpcConfig.cmake",
        "lib/cmake/rrpc/rrpcConfigVersion.cmake",
        "lib/pkgconfig/rrpc.pc",
    ] {
        assert!(prefix.join(f).is_file(), "the install has no {f}");
    }
    let d = dynamic(&real_path);
    assert_eq!(
        d.soname.as_deref(),
        Some(soname().as_str()),
        "installed SONAME:\n{}",
        d.raw
    );

    // An unrelated project finds it with find_package(rrpc <version> CONFIG REQUIRED).
    let consumer_src = cmake::repo_root().join("tests/cmake-consumer");
    let build = fresh_dir("packaging-consumer");
    run(Command::new("cmake")
        .arg("-S")
        .arg(&consumer_src)
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .arg(format!("-DRRPC_WANT_VERSION={VERSION}")));
    run(Command::new("cmake")
        .arg("--build")
        .arg(&build)
        .args(["--parallel", "2"]));

    run_consumer(&build.join("consumer_shared"), Some(&libdir));
    assert_needs_shared_rrpc(&build.join("consumer_shared"));
    run_consumer(&build.join("consumer_static"), None);
    assert_no_shared_rrpc(&build.join("consumer_static"));
    // rrpc::lib is the shared library unless BUILD_SHARED_LIBS is OFF.
    run_consumer(&build.join("consumer_lib"), Some(&libdir));
    assert_needs_shared_rrpc(&build.join("consumer_lib"));

    // The version file refuses the next minor release (0.x: SameMinorVersion).
    let major: u32 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap();
    let minor: u32 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap();
    let incompatible = if major == 0 {
        format!("0.{}", minor + 1)
    } else {
        format!("{}.0", major + 1)
    };
    let wrong = fresh_dir("packaging-consumer-wrong-version");
    let mut cmd = Command::new("cmake");
    cmd.arg("-S")
        .arg(&consumer_src)
        .arg("-B")
        .arg(&wrong)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .arg(format!("-DRRPC_WANT_VERSION={incompatible}"));
    let out = cmd.output().expect("run cmake");
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("rrpcConfig.cmake"),
        "find_package(rrpc {incompatible}) should fail against {VERSION}:\n{}",
        cmake::describe(&cmd, &out)
    );
}

#[test]
fn pkg_config_shared_and_static() {
    if !have_tools(&["cmake", "cc", "pkg-config"]) {
        return;
    }
    let prefix = installed_prefix();
    let libdir = prefix.join("lib");
    let pc_path = libdir.join("pkgconfig");
    let pkg_config = |args: &[&str]| -> Vec<String> {
        let out = run(Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", &pc_path)
            .args(args)
            .arg("rrpc"));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };

    assert_eq!(pkg_config(&["--modversion"]), vec![VERSION.to_owned()]);
    let cflags_libs = pkg_config(&["--cflags", "--libs"]);
    let expected_include = format!("-I{}", prefix.join("include").display());
    assert!(
        cflags_libs.contains(&expected_include) && cflags_libs.contains(&"-lrrpc".to_owned()),
        "pkg-config --cflags --libs rrpc points elsewhere (the .pc prefix must be the install prefix): {cflags_libs:?}"
    );

    let consumer_c = cmake::repo_root().join("tests/cmake-consumer/consumer.c");
    let out_dir = fresh_dir("packaging-pkg-config");

    // Shared: cc consumer.c $(pkg-config --cflags --libs rrpc)
    let shared = out_dir.join("consumer_shared");
    run(Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(&consumer_c)
        .args(&cflags_libs)
        .arg("-o")
        .arg(&shared));
    run_consumer(&shared, Some(&libdir));
    assert_needs_shared_rrpc(&shared);

    // Static: librrpc.a plus Libs.private (the system libraries rustc asked for).
    let static_libs = pkg_config(&["--static", "--libs"]);
    let shared_libs = pkg_config(&["--libs"]);
    assert!(
        static_libs.len() > shared_libs.len(),
        "rrpc.pc has no Libs.private: --static --libs gives {static_libs:?}"
    );
    let mut link: Vec<String> = Vec::new();
    for flag in static_libs {
        if flag == "-lrrpc" {
            link.extend(["-Wl,-Bstatic", "-lrrpc", "-Wl,-Bdynamic"].map(str::to_owned));
        } else {
            link.push(flag);
        }
    }
    let static_exe = out_dir.join("consumer_static");
    run(Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(&consumer_c)
        .args(pkg_config(&["--cflags"]))
        .args(&link)
        .arg("-o")
        .arg(&static_exe));
    run_consumer(&static_exe, None);
    assert_no_shared_rrpc(&static_exe);
}

#[test]
fn add_subdirectory_from_a_parent_project() {
    if !have_tools(&["cmake", "cc"]) {
        return;
    }
    // Fill the shared cargo target dir first, so the cargo run below has nothing to compile.
    c_build();

    let root = cmake::repo_root();
    let src = fresh_dir("packaging-subdir");
    let build = src.join("build");
    std::fs::write(
        src.join("CMakeLists.txt"),
        format!(
            r#"cmake_minimum_required(VERSION 3.16)
project(rrpc_subdir_consumer LANGUAGES C)
add_subdirectory([==[{root}]==] rrpc)
if(TARGET echo_device OR TARGET deferred_reply)
  message(FATAL_ERROR "RRPC_BUILD_EXAMPLES must default to OFF under add_subdirectory")
endif()
foreach(kind IN ITEMS rrpc rrpc_static lib)
  add_executable(consumer_${{kind}} [==[{consumer}]==])
  target_link_libraries(consumer_${{kind}} PRIVATE rrpc::${{kind}})
endforeach()
"#,
            root = root.display(),
            consumer = root.join("tests/cmake-consumer/consumer.c").display(),
        ),
    )
    .expect("write CMakeLists.txt");

    run(Command::new("cmake")
        .arg("-S")
        .arg(&src)
        .arg("-B")
        .arg(&build)
        .args(cmake::rrpc_cmake_defines()));
    let mut cmd = Command::new("cmake");
    cmd.arg("--build").arg(&build).args(["--parallel", "2"]);
    let out = run(&mut cmd);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !log.contains("Compiling tokio "),
        "the add_subdirectory build recompiled the dependencies instead of reusing {}:\n{}",
        cmake::cargo_target_dir().display(),
        cmake::describe(&cmd, &out)
    );

    // All three run from the build tree without LD_LIBRARY_PATH (RPATH + soname link).
    run_consumer(&build.join("consumer_rrpc"), None);
    assert_needs_shared_rrpc(&build.join("consumer_rrpc"));
    run_consumer(&build.join("consumer_rrpc_static"), None);
    assert_no_shared_rrpc(&build.join("consumer_rrpc_static"));
    run_consumer(&build.join("consumer_lib"), None);
    assert_needs_shared_rrpc(&build.join("consumer_lib"));
}
