//! CMake and pkg-config packaging: the top-level CMakeLists.txt builds librrpc (through
//! cargo) and examples-c/, installs a library with the right soname, a header, a CMake
//! package and rrpc.pc, and all three ways of consuming it work: find_package,
//! pkg-config (shared and static) and add_subdirectory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::common;
use crate::common::cmake::{self, c_build, run};

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

fn require_tools(tools: &[&str]) {
    tools.iter().for_each(|t| common::require_tool(t));
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
    // readelf and objdump are alternatives: either will do.
    if common::have_tool("readelf") {
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
    } else if common::have_tool("objdump") {
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

/// Every rrpc_ function `lib` exports carries a 1.x version node (RRPC_1.0, or the
/// node of the release that added it: librrpc.map): the library
/// CMake links itself from librrpc.a with librrpc.map (tests/tooling/abi.rs has the details).
fn assert_symbols_versioned(lib: &Path) {
    common::require_tool("readelf");
    let out = run(Command::new("readelf").args(["--dyn-syms", "-W"]).arg(lib));
    let text = String::from_utf8_lossy(&out.stdout);
    let functions: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            // "Num: Value Size Type Bind Vis Ndx Name", and lines that are not symbols.
            match l.split_whitespace().collect::<Vec<_>>()[..] {
                [_, _, _, _, _, _, ndx, name, ..] if ndx != "UND" && name.starts_with("rrpc_") => {
                    Some(name)
                }
                _ => None,
            }
        })
        .collect();
    let unversioned: Vec<&&str> = functions
        .iter()
        .filter(|s| !s.contains("@@RRPC_1."))
        .collect();
    assert!(
        functions.len() > 60 && unversioned.is_empty(),
        "{} should export its {} rrpc_ functions at a 1.x node; these are not: {unversioned:?}",
        lib.display(),
        functions.len()
    );
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

fn cmake_builds_examples_and_library_with_soname() {
    require_tools(&["cmake", "cc"]);
    let build = c_build();

    // CMake gave cargo its own target dir, in the profile's directory.
    let cargo_so = cmake::cargo_target_dir().join("release/librrpc.so");
    assert!(cargo_so.is_file(), "{} is missing", cargo_so.display());

    let lib = build.join("lib/librrpc.so");
    assert_symbols_versioned(&lib);
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

/// Every cargo feature, in the order CMake lists them (RRPC_FEATURES, rrpc.pc).
const ALL_FEATURES: [&str; 6] = ["client", "caller", "tls", "mqtt5", "jt808", "credentials"];

/// Builds tests/cmake-consumer against the installation in `prefix` (find_package through
/// CMAKE_PREFIX_PATH) into a fresh scratch dir `name`, checks the package reports
/// `features` and that the static consumer links with section GC, and runs the three
/// consumers (the shared ones with LD_LIBRARY_PATH=`libdir`).
fn cmake_consumer(prefix: &Path, libdir: &Path, name: &str, features: &[&str]) {
    let build = fresh_dir(name);
    let out = run(Command::new("cmake")
        .arg("-S")
        .arg(cmake::repo_root().join("tests/cmake-consumer"))
        .arg("-B")
        .arg(&build)
        .args(["-G", "Unix Makefiles"]) // link.txt below
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .arg(format!("-DRRPC_WANT_VERSION={VERSION}")));
    let configure_log = String::from_utf8_lossy(&out.stdout);
    let want = format!("rrpc features: {}", features.join(";"));
    assert!(
        configure_log
            .lines()
            .any(|l| l.trim_start_matches("-- ") == want),
        "RRPC_FEATURES of {} should read \"{want}\":\n{configure_log}",
        prefix.display()
    );
    run(Command::new("cmake")
        .arg("--build")
        .arg(&build)
        .args(["--parallel", "2"]));

    // rrpc::rrpc_static puts -Wl,--gc-sections on the consumer's link line.
    let link_txt = build.join("CMakeFiles/consumer_static.dir/link.txt");
    let link = std::fs::read_to_string(&link_txt)
        .unwrap_or_else(|e| panic!("{}: {e}", link_txt.display()));
    assert!(
        link.contains("-Wl,--gc-sections"),
        "rrpc::rrpc_static should link with section GC: {link}"
    );

    run_consumer(&build.join("consumer_shared"), Some(libdir));
    assert_needs_shared_rrpc(&build.join("consumer_shared"));
    run_consumer(&build.join("consumer_static"), None);
    assert_no_shared_rrpc(&build.join("consumer_static"));
    // rrpc::lib is the shared library unless BUILD_SHARED_LIBS is OFF.
    run_consumer(&build.join("consumer_lib"), Some(libdir));
    assert_needs_shared_rrpc(&build.join("consumer_lib"));
}

fn install_then_find_package_shared_and_static() {
    require_tools(&["cmake", "cc"]);
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
        "lib/cmake/rrpc/rrpcImportedTargets.cmake",
        "bin/rrpc",
        "lib/pkgconfig/rrpc.pc",
        "share/rrpc/rrpc.supp",
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
    assert_symbols_versioned(&real_path);

    // An unrelated project finds it with find_package(rrpc <version> CONFIG REQUIRED).
    cmake_consumer(prefix, &libdir, "packaging-consumer", &ALL_FEATURES);
    let consumer_src = cmake::repo_root().join("tests/cmake-consumer");

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

fn pkg_config_shared_and_static() {
    require_tools(&["cmake", "cc", "pkg-config"]);
    let prefix = installed_prefix();
    let libdir = prefix.join("lib");
    let pc_path = libdir.join("pkgconfig");
    let pkg_config = |args: &[&str]| pkg_config(&pc_path, args);

    assert_eq!(pkg_config(&["--modversion"]), vec![VERSION.to_owned()]);
    let cflags_libs = pkg_config(&["--cflags", "--libs"]);
    let expected_include = format!("-I{}", prefix.join("include").display());
    assert!(
        cflags_libs.contains(&expected_include) && cflags_libs.contains(&"-lrrpc".to_owned()),
        "pkg-config --cflags --libs rrpc points elsewhere (the .pc prefix must be the install prefix): {cflags_libs:?}"
    );

    let out_dir = fresh_dir("packaging-pkg-config");

    // Shared: cc consumer.c $(pkg-config --cflags --libs rrpc)
    let shared = out_dir.join("consumer_shared");
    cc_consumer(&cflags_libs, &[], &shared);
    run_consumer(&shared, Some(&libdir));
    assert_needs_shared_rrpc(&shared);

    // Shared, found at run time through the RPATH the README suggests for a non-system prefix.
    let rpath = out_dir.join("consumer_rpath");
    cc_consumer(
        &cflags_libs,
        &[format!("-Wl,-rpath,{}", libdir.display())],
        &rpath,
    );
    run_consumer(&rpath, None);

    // Static, exactly as the README writes it:
    //   cc main.c $(pkg-config --cflags rrpc) -Wl,-Bstatic $(pkg-config --static --libs rrpc) -Wl,-Bdynamic
    // Libs.private holds the system libraries rustc asked for behind -Wl,-Bdynamic (libgcc_s
    // has no .a), and -Wl,--gc-sections.
    let static_libs = pkg_config(&["--static", "--libs"]);
    let shared_libs = pkg_config(&["--libs"]);
    assert!(
        static_libs.len() > shared_libs.len(),
        "rrpc.pc has no Libs.private: --static --libs gives {static_libs:?}"
    );
    assert!(
        static_libs.contains(&"-Wl,--gc-sections".to_owned()),
        "pkg-config --static --libs rrpc should turn on section GC: {static_libs:?}"
    );
    let static_exe = out_dir.join("consumer_static");
    cc_consumer(
        &pkg_config(&["--cflags"]),
        &static_line(&static_libs),
        &static_exe,
    );
    run_consumer(&static_exe, None);
    assert_no_shared_rrpc(&static_exe);

    assert_eq!(
        pkg_config(&["--variable=features"]),
        ALL_FEATURES,
        "rrpc.pc's features variable"
    );
}

/// `pkg-config <args> rrpc` with PKG_CONFIG_PATH=`pc_dir`, split into words.
fn pkg_config(pc_dir: &Path, args: &[&str]) -> Vec<String> {
    let out = run(Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", pc_dir)
        .args(args)
        .arg("rrpc"));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `-Wl,-Bstatic <pkg-config --static --libs rrpc> -Wl,-Bdynamic`, the README's static line.
fn static_line(static_libs: &[String]) -> Vec<String> {
    let mut link = vec!["-Wl,-Bstatic".to_owned()];
    link.extend(static_libs.iter().cloned());
    link.push("-Wl,-Bdynamic".to_owned());
    link
}

/// `cc -std=c99 <warnings> tests/cmake-consumer/consumer.c <cflags> <libs> -o out`.
fn cc_consumer(cflags: &[String], libs: &[String], out: &Path) {
    run(Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(cmake::repo_root().join("tests/cmake-consumer/consumer.c"))
        .args(cflags)
        .args(libs)
        .arg("-o")
        .arg(out));
}

fn add_subdirectory_from_a_parent_project() {
    require_tools(&["cmake", "cc"]);
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

/// `cpack` makes a .tar.gz and a .deb of the install; the .deb, unpacked with `dpkg -x`
/// into a scratch root, serves find_package, pkg-config (--define-prefix) and the tool,
/// and the tarball's rrpc.pc works wherever it is unpacked.
fn cpack_deb_and_tarball_serve_consumers() {
    require_tools(&["cmake", "cc", "pkg-config", "dpkg", "dpkg-deb", "tar"]);
    let build = c_build();
    let out = fresh_dir("packaging-cpack");
    {
        // cpack installs the build (and may rebuild it): not while another test does.
        let _lock = cmake::FileLock::exclusive(&cmake::repo_root().join("target/cmake-test.lock"))
            .unwrap_or_else(|e| panic!("{e}"));
        run(Command::new("cpack")
            .current_dir(build)
            .args(["-G", "TGZ;DEB", "-B"])
            .arg(&out));
    }
    let find = |suffix: &str| -> PathBuf {
        std::fs::read_dir(&out)
            .expect("read the cpack output dir")
            .map(|e| e.expect("dir entry").path())
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("cpack made no *{suffix} in {}", out.display()))
    };

    // The .deb: its control fields, then its files under a scratch root.
    let deb = find(".deb");
    let field = |name: &str| -> String {
        let o = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    assert_eq!(field("Package"), "librrpc");
    assert_eq!(field("Version"), VERSION);
    assert!(
        !field("Maintainer").is_empty(),
        "the .deb has no Maintainer"
    );
    assert!(
        field("Depends").contains("libc6"),
        "the .deb should depend on libc6: {}",
        field("Depends")
    );
    let root = out.join("root");
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root));
    let usr = root.join("usr");
    let libdir = usr.join("lib");
    for f in [
        "lib/librrpc.a",
        "include/rrpc.h",
        "lib/cmake/rrpc/rrpcConfig.cmake",
        "lib/pkgconfig/rrpc.pc",
        "bin/rrpc",
    ] {
        assert!(usr.join(f).is_file(), "the .deb has no /usr/{f}");
    }
    let d = dynamic(&libdir.join(format!("librrpc.so.{VERSION}")));
    assert_eq!(d.soname, Some(soname()), "SONAME in the .deb:\n{}", d.raw);
    assert_symbols_versioned(&libdir.join(format!("librrpc.so.{VERSION}")));

    let tool = run(Command::new(usr.join("bin/rrpc")).arg("--version"));
    assert!(
        String::from_utf8_lossy(&tool.stdout).contains(VERSION),
        "rrpc --version from the .deb: {}",
        String::from_utf8_lossy(&tool.stdout)
    );

    cmake_consumer(&usr, &libdir, "packaging-cpack-consumer", &ALL_FEATURES);

    // pkg-config: rrpc.pc says prefix=/usr; --define-prefix makes it the unpacked root.
    let pc_dir = libdir.join("pkgconfig");
    assert_eq!(pkg_config(&pc_dir, &["--variable=prefix"]), ["/usr"]);
    let flags = pkg_config(&pc_dir, &["--define-prefix", "--cflags", "--libs"]);
    let rpath = format!("-Wl,-rpath,{}", libdir.display());
    let shared = out.join("consumer_pkg_config");
    cc_consumer(&flags, &[rpath], &shared);
    run_consumer(&shared, None);
    let static_exe = out.join("consumer_pkg_config_static");
    cc_consumer(
        &pkg_config(&pc_dir, &["--define-prefix", "--cflags"]),
        &static_line(&pkg_config(
            &pc_dir,
            &["--define-prefix", "--static", "--libs"],
        )),
        &static_exe,
    );
    run_consumer(&static_exe, None);
    assert_no_shared_rrpc(&static_exe);

    // The tarball: unpacked anywhere, its rrpc.pc finds its own directory (no --define-prefix).
    let tgz = find(".tar.gz");
    let unpacked = out.join("tgz");
    std::fs::create_dir_all(&unpacked).expect("create the tarball dir");
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&tgz)
        .arg("-C")
        .arg(&unpacked));
    let top = std::fs::read_dir(&unpacked)
        .expect("read the unpacked tarball")
        .next()
        .expect("the tarball has a top directory")
        .expect("dir entry")
        .path();
    let tgz_pc = top.join("lib/pkgconfig");
    let flags = pkg_config(&tgz_pc, &["--cflags", "--libs"]);
    let rpath = format!("-Wl,-rpath,{}", top.join("lib").display());
    let from_tgz = out.join("consumer_tarball");
    cc_consumer(&flags, &[rpath], &from_tgz);
    run_consumer(&from_tgz, None);
}

/// The symbol names `nm <args> <file>` prints (third column, or second for undefined ones).
/// The symbol names `nm` lists, without a version suffix (`rrpc_x@@RRPC_1.0`).
fn nm(args: &[&str], file: &Path) -> Vec<String> {
    let out = run(Command::new("nm").args(args).arg(file));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|s| s.split('@').next().unwrap_or(s).to_owned())
        .collect()
}

/// Device-only libraries, built as firmware is: cross-style (`RRPC_RUST_TARGET`, here the
/// host's own triple, the only target this machine can run) with the caller and JT/T 808
/// left out, once with TLS and credentials and once with the client alone. Each leaves the
/// left-out families out of librrpc.so, skips the examples that need them, serves a call
/// through its echo_device, and installs a package that says what it holds.
fn lean_device_builds_for_a_rust_target() {
    require_tools(&["cmake", "cc", "nm", "pkg-config"]);
    let host = cmake::host_triple();
    let lean: [(&str, &[&str]); 2] = [
        ("lean-tls", &["client", "tls", "credentials"]),
        ("lean-client", &["client"]),
    ];
    for (name, features) in lean {
        // Both build into <target-dir>/<triple>/release, which no other build uses: one
        // after the other, in this test only.
        let dir = cmake::repo_root()
            .join("target")
            .join(format!("cmake-{name}"));
        let mut defines = vec![
            format!("-DRRPC_RUST_TARGET={host}"),
            "-DRRPC_BUILD_TOOL=OFF".to_owned(),
            "-DRRPC_BUILD_EXAMPLES=ON".to_owned(),
        ];
        for f in ALL_FEATURES {
            let on = if features.contains(&f) { "ON" } else { "OFF" };
            defines.push(format!("-DRRPC_WITH_{}={on}", f.to_uppercase()));
        }
        cmake::configure_and_build(&dir, &defines).unwrap_or_else(|e| panic!("{e}"));

        let cargo_so = cmake::cargo_target_dir()
            .join(&host)
            .join("release/librrpc.so");
        assert!(
            cargo_so.is_file(),
            "{name}: cargo --target {host} should have built {}",
            cargo_so.display()
        );
        let so = dir.join("lib/librrpc.so");
        // Without the version node: `rrpc_client_new@@RRPC_1.0` is rrpc_client_new.
        let exported: Vec<String> = nm(&["-D", "--defined-only"], &so)
            .into_iter()
            .map(|s| s.split('@').next().unwrap_or_default().to_owned())
            .collect();
        for present in ["rrpc_client_new", "rrpc_router_new", "rrpc_features"] {
            assert!(
                exported.iter().any(|s| s == present),
                "{name}: librrpc.so should export {present}"
            );
        }
        let mut absent = vec!["rrpc_caller_", "rrpc_response_", "rrpc_jt808_"];
        if !features.contains(&"credentials") {
            absent.push("rrpc_credentials_");
        }
        for prefix in absent {
            let found: Vec<&String> = exported.iter().filter(|s| s.starts_with(prefix)).collect();
            assert!(found.is_empty(), "{name}: librrpc.so exports {found:?}");
        }
        if !features.contains(&"tls") {
            let rustls = nm(&["--demangle"], &so)
                .into_iter()
                .filter(|s| s.contains("rustls"))
                .count();
            assert_eq!(
                rustls, 0,
                "{name}: rustls is linked into a build without TLS"
            );
        }

        let examples = dir.join("examples-c");
        assert!(
            examples.join("echo_device").is_file(),
            "{name}: no echo_device"
        );
        for skipped in ["call_device", "jt808_adapter"] {
            assert!(
                !examples.join(skipped).exists(),
                "{name}: {skipped} needs a left-out feature and should be skipped"
            );
        }

        // The device example answers a call through a broker.
        let broker = common::Broker::rumqttd();
        let caller = common::Caller::connect(broker.port);
        let port = broker.port.to_string();
        let dev = common::Proc::spawn(
            &examples.join("echo_device"),
            &common::strings(&[
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--product-key",
                "a1Lean",
                "--dialect",
                "alibaba",
                "--device-name",
                "dev1",
            ]),
        );
        assert!(
            dev.wait_stderr("connected", Duration::from_secs(15)),
            "{name}: {}",
            dev.transcript()
        );
        let answer = caller.call_system("a1Lean", "dev1", b"lean", Duration::from_secs(5));
        assert_eq!(
            answer.as_deref(),
            Some(&b"lean"[..]),
            "{name}: {}",
            dev.transcript()
        );

        // Installed: the CMake package and rrpc.pc name the features.
        let prefix = fresh_dir(&format!("packaging-{name}-prefix"));
        run(Command::new("cmake")
            .arg("--install")
            .arg(&dir)
            .arg("--prefix")
            .arg(&prefix));
        cmake_consumer(
            &prefix,
            &prefix.join("lib"),
            &format!("packaging-{name}-consumer"),
            features,
        );
        assert_eq!(
            pkg_config(&prefix.join("lib/pkgconfig"), &["--variable=features"]),
            features,
            "{name}: rrpc.pc's features"
        );
    }
}

/// A toolchain file in the Yocto/Buildroot/OpenWrt manner picks cargo's `--target` and the
/// .deb's architecture from CMAKE_SYSTEM_PROCESSOR and the compiler's name. Configure only:
/// this machine has no cross compilers, so the host's `cc` stands in under the SDK's name.
fn toolchain_file_picks_the_rust_target() {
    require_tools(&["cmake", "cc"]);
    let dir = fresh_dir("packaging-toolchain");
    let cc = Command::new("sh")
        .args(["-c", "command -v cc"])
        .output()
        .expect("find cc");
    let cc = PathBuf::from(String::from_utf8_lossy(&cc.stdout).trim());
    for (processor, compiler, triple, deb_arch) in [
        (
            "aarch64",
            "aarch64-poky-linux-gcc",
            "aarch64-unknown-linux-gnu",
            "arm64",
        ),
        (
            "armv7",
            "arm-buildroot-linux-gnueabihf-gcc",
            "armv7-unknown-linux-gnueabihf",
            "armhf",
        ),
        (
            "aarch64",
            "aarch64-openwrt-linux-musl-gcc",
            "aarch64-unknown-linux-musl",
            "arm64",
        ),
    ] {
        let sdk_cc = dir.join(compiler);
        std::os::unix::fs::symlink(&cc, &sdk_cc).expect("symlink the stand-in compiler");
        let toolchain = dir.join(format!("{compiler}.cmake"));
        std::fs::write(
            &toolchain,
            format!(
                "set(CMAKE_SYSTEM_NAME Linux)\nset(CMAKE_SYSTEM_PROCESSOR {processor})\n\
                 set(CMAKE_C_COMPILER [==[{}]==])\n",
                sdk_cc.display()
            ),
        )
        .expect("write the toolchain file");
        let build = dir.join(format!("build-{compiler}"));
        run(Command::new("cmake")
            .arg("-S")
            .arg(cmake::repo_root())
            .arg("-B")
            .arg(&build)
            .args(["-G", "Unix Makefiles"]) // build.make below
            .arg(format!("-DCMAKE_TOOLCHAIN_FILE={}", toolchain.display()))
            .args(cmake::rrpc_cmake_defines())
            // The target's standard library may be missing here: skip rustc's question.
            .arg("-DRRPC_NATIVE_STATIC_LIBS=-lgcc_s -lc")
            .arg("-DRRPC_BUILD_EXAMPLES=OFF"));
        let cache = std::fs::read_to_string(build.join("CMakeCache.txt")).expect("CMakeCache.txt");
        assert!(
            cache.contains(&format!("RRPC_RUST_TARGET:STRING={triple}\n")),
            "{compiler} ({processor}) should build for {triple}"
        );
        let cpack = std::fs::read_to_string(build.join("CPackConfig.cmake")).expect("CPackConfig");
        assert!(
            cpack.contains(&format!(
                "set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE \"{deb_arch}\")"
            )),
            "{compiler}: the .deb should be for {deb_arch}"
        );
        // The build rule passes the triple and links with the toolchain's compiler.
        let rules = std::fs::read_to_string(build.join("CMakeFiles/rrpc_cargo.dir/build.make"))
            .expect("the cargo rule");
        let linker_var = format!(
            "CARGO_TARGET_{}_LINKER={}",
            triple.to_uppercase().replace('-', "_"),
            sdk_cc.display()
        );
        assert!(
            rules.contains(&format!("--target {triple}")) && rules.contains(&linker_var),
            "{compiler}: the cargo rule should have --target {triple} and {linker_var}"
        );
    }
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        cmake_builds_examples_and_library_with_soname needs ["cmake", "cc", "readelf"],
        install_then_find_package_shared_and_static needs ["cmake", "cc", "readelf"],
        pkg_config_shared_and_static needs ["cmake", "cc", "pkg-config"],
        add_subdirectory_from_a_parent_project needs ["cmake", "cc"],
        cpack_deb_and_tarball_serve_consumers
            needs ["cmake", "cc", "pkg-config", "dpkg", "dpkg-deb", "tar", "readelf"],
        lean_device_builds_for_a_rust_target needs ["cmake", "cc", "nm", "pkg-config"],
        toolchain_file_picks_the_rust_target needs ["cmake", "cc"],
    ]
}
