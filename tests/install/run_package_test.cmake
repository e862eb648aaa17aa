# Builds and runs tests/install/consumer against spindle in one of three ways (MODE):
#   find_package  install the build tree to a prefix, then find_package(spindle)
#   subdirectory  add_subdirectory(spindle source) as a shared library
#   pkg_config    install, then compile with the flags `pkg-config spindle` gives
# Inputs: BUILD_DIR, SOURCE_DIR (spindle), WORK_DIR, MODE, CXX.
cmake_minimum_required(VERSION 3.25)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "failed: ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
set(consumer ${SOURCE_DIR}/tests/install/consumer)

if(MODE STREQUAL "find_package" OR MODE STREQUAL "pkg_config")
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
endif()

if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} -S ${consumer} -B ${WORK_DIR}/build -G Ninja -DCMAKE_CXX_COMPILER=${CXX}
      -DCMAKE_PREFIX_PATH=${prefix} -DCONSUME=find_package)
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
  run(${WORK_DIR}/build/consumer)
elseif(MODE STREQUAL "subdirectory")
  run(${CMAKE_COMMAND} -S ${consumer} -B ${WORK_DIR}/build -G Ninja -DCMAKE_CXX_COMPILER=${CXX}
      -DCONSUME=subdirectory -DSPINDLE_SOURCE_DIR=${SOURCE_DIR} -DBUILD_SHARED_LIBS=ON)
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
  file(GLOB shared_library ${WORK_DIR}/build/spindle/src/libspindle.so*)
  if(NOT shared_library)
    message(FATAL_ERROR "BUILD_SHARED_LIBS=ON did not build libspindle.so")
  endif()
  run(${WORK_DIR}/build/consumer)
elseif(MODE STREQUAL "pkg_config")
  find_program(PKG_CONFIG pkg-config REQUIRED)
  file(GLOB_RECURSE pc_file ${prefix}/spindle.pc)
  get_filename_component(pc_dir "${pc_file}" DIRECTORY)
  set(ENV{PKG_CONFIG_PATH} ${pc_dir})
  run(${PKG_CONFIG} --cflags --libs spindle)
  string(STRIP "${last_output}" flags)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  file(MAKE_DIRECTORY ${WORK_DIR}/build)
  run(${CXX} ${consumer}/main.cpp -o ${WORK_DIR}/build/consumer ${flags})
  run(${WORK_DIR}/build/consumer)
else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()
message(STATUS "${last_output}")
