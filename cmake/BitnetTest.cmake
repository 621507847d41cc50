# bitnet_add_check_test(NAME SOURCES src... LIBS lib... [LABELS l...])
# Builds one Check test program and registers it with CTest.
function(bitnet_add_check_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT CHECK_FOUND)
    message(FATAL_ERROR "Check (libcheck) is required for tests: run scripts/deps.sh")
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CHECK)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "unit;${T_LABELS}"
                       ENVIRONMENT "CK_DEFAULT_TIMEOUT=120")
endfunction()

# bitnet_add_script_test(NAME COMMAND cmd... [LABELS l...])
# Registers a shell-level test (contract and integration tests).
function(bitnet_add_script_test name)
  cmake_parse_arguments(T "" "" "COMMAND;LABELS" ${ARGN})
  add_test(NAME ${name} COMMAND ${T_COMMAND})
  set_tests_properties(${name} PROPERTIES LABELS "script;${T_LABELS}")
endfunction()
