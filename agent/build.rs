//! Run path for GPU builds. When llama.cpp is built as shared libraries
//! (`LLAMA_BUILD_SHARED_LIBS=1`, as scripts/cuda-build.sh does, since cuBLAS from PyPI is
//! shared-only), llama-cpp-sys-2 places them beside every binary it links (and in `deps/`
//! beside the test binaries); `$ORIGIN` lets a binary find them wherever that folder goes.

fn main() {
    println!("cargo:rerun-if-env-changed=LLAMA_BUILD_SHARED_LIBS");
    if std::env::var("LLAMA_BUILD_SHARED_LIBS").as_deref() == Ok("1") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN");
    }
}
