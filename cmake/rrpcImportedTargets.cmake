# rrpc_add_imported_targets(): the imported targets rrpc::rrpc (librrpc.so) and
# rrpc::rrpc_static (librrpc.a), defined the same way for the build tree
# (CMakeLists.txt) and for an installation (rrpcConfig.cmake includes this file).
#
#   rrpc_add_imported_targets(
#     SHARED <path of librrpc.so>  SONAME <soname>
#     STATIC <path of librrpc.a>   INCLUDE_DIR <dir holding rrpc.h>
#     NATIVE_LIBS <system libraries a Rust staticlib needs...>
#     [GLOBAL])
#
# rrpc::rrpc_static also asks the consumer's linker to drop unreferenced sections
# (-Wl,--gc-sections for GNU ld, gold, lld; -Wl,-dead_strip on Apple): librrpc.a holds
# the whole Rust standard library and every dependency, and without section GC a static
# executable carries all of it. Set RRPC_STATIC_GC_SECTIONS to OFF before find_package()
# or add_subdirectory() to leave the consumer's link options alone.
function(rrpc_add_imported_targets)
  cmake_parse_arguments(PARSE_ARGV 0 _t "GLOBAL" "SHARED;SONAME;STATIC;INCLUDE_DIR" "NATIVE_LIBS")
  set(_global "")
  if(_t_GLOBAL)
    set(_global GLOBAL)
  endif()

  if(NOT TARGET rrpc::rrpc)
    add_library(rrpc::rrpc SHARED IMPORTED ${_global})
    set_target_properties(rrpc::rrpc PROPERTIES
      IMPORTED_LOCATION "${_t_SHARED}"
      IMPORTED_SONAME "${_t_SONAME}"
      INTERFACE_INCLUDE_DIRECTORIES "${_t_INCLUDE_DIR}")
  endif()

  if(NOT TARGET rrpc::rrpc_static)
    set(_gc "")
    if(NOT DEFINED RRPC_STATIC_GC_SECTIONS OR RRPC_STATIC_GC_SECTIONS)
      if(APPLE)
        set(_gc "LINKER:-dead_strip")
      elseif(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang" OR CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
        set(_gc "LINKER:--gc-sections")
      endif()
    endif()
    add_library(rrpc::rrpc_static STATIC IMPORTED ${_global})
    set_target_properties(rrpc::rrpc_static PROPERTIES
      IMPORTED_LOCATION "${_t_STATIC}"
      IMPORTED_LINK_INTERFACE_LANGUAGES C
      INTERFACE_LINK_LIBRARIES "${_t_NATIVE_LIBS}"
      INTERFACE_LINK_OPTIONS "${_gc}"
      INTERFACE_INCLUDE_DIRECTORIES "${_t_INCLUDE_DIR}")
  endif()
endfunction()
