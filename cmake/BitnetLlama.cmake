# Looks for a llama.cpp or bitnet.cpp tree for the llama shim and crossval.
# Search order (DESIGN.md section 8): BITNET_CPP_DIR (a source tree with
# include/llama.h), BITNET_CPP_PATH (a directory holding libllama), then
# BITNET_CROSSVAL_LIBDIR (the libraries crossval tests load), then the
# reference release fetched by scripts/fetch-reference.sh into .cache/.
set(BITNET_LLAMA_ENABLED OFF)
set(BITNET_LLAMA_REASON "")
set(BITNET_LLAMA_INCLUDE "")
set(BITNET_LLAMA_LIBDIR "")
set(BITNET_REFERENCE_DIR "${CMAKE_CURRENT_SOURCE_DIR}/.cache/reference" CACHE PATH
    "Where scripts/fetch-reference.sh puts the reference llama.cpp release")

foreach(_var BITNET_CPP_DIR BITNET_CPP_PATH BITNET_CROSSVAL_LIBDIR)
  if(NOT DEFINED ${_var} AND DEFINED ENV{${_var}})
    set(${_var} "$ENV{${_var}}")
  endif()
endforeach()

if(BITNET_LLAMA STREQUAL "OFF")
  set(BITNET_LLAMA_REASON "disabled by BITNET_LLAMA=OFF")
else()
  if(BITNET_CPP_DIR AND EXISTS "${BITNET_CPP_DIR}/include/llama.h")
    set(BITNET_LLAMA_INCLUDE "${BITNET_CPP_DIR}/include")
    set(BITNET_LLAMA_REASON "llama.h from BITNET_CPP_DIR=${BITNET_CPP_DIR}")
  elseif(EXISTS "${BITNET_REFERENCE_DIR}/llama.cpp/include/llama.h")
    set(BITNET_LLAMA_INCLUDE "${BITNET_REFERENCE_DIR}/llama.cpp/include")
    set(BITNET_LLAMA_REASON "llama.h from the reference release in ${BITNET_REFERENCE_DIR}")
  endif()
  foreach(_dir "${BITNET_CPP_PATH}" "${BITNET_CROSSVAL_LIBDIR}"
               "${BITNET_REFERENCE_DIR}/linux-x64/bins/linux-x64")
    if(_dir AND NOT BITNET_LLAMA_LIBDIR)
      file(GLOB _libs "${_dir}/libllama*.so*")
      if(_libs)
        set(BITNET_LLAMA_LIBDIR "${_dir}")
      endif()
    endif()
  endforeach()
  if(BITNET_LLAMA_INCLUDE AND BITNET_LLAMA_LIBDIR)
    set(BITNET_LLAMA_ENABLED ON)
    set(BITNET_LLAMA_REASON "${BITNET_LLAMA_REASON}; libllama in ${BITNET_LLAMA_LIBDIR}")
  else()
    set(BITNET_LLAMA_REASON
        "no llama.cpp tree found (set BITNET_CPP_DIR/BITNET_CPP_PATH or run scripts/fetch-reference.sh)")
    if(BITNET_LLAMA STREQUAL "ON")
      message(FATAL_ERROR "BITNET_LLAMA=ON but ${BITNET_LLAMA_REASON}")
    endif()
  endif()
endif()
