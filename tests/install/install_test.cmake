# The installed package end to end: `cmake --install` the build into a scratch prefix,
# configure and build tests/install/consumer against it with find_package(procpool), run the
# consumer with the installed fake worker, and run the installed procpool command, which must
# find its workers from the prefix. The scratch directory is removed on success and failure.
#
#   cmake -DBUILD_DIR=... -DCONSUMER_DIR=... -DWORK_DIR=... -DGENERATOR=... \
#         -DCXX_COMPILER=... -P install_test.cmake
foreach(var BUILD_DIR CONSUMER_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "install_test.cmake: ${var} is not set")
  endif()
endforeach()

set(prefix ${WORK_DIR}/prefix)
set(consumer_build ${WORK_DIR}/consumer-build)

macro(fail what)
  file(REMOVE_RECURSE ${WORK_DIR})
  message(FATAL_ERROR "${what}")
endmacro()

# step(NAME COMMAND...): runs a command, echoing its output, and fails the test unless it
# exits 0. Its stdout is left in step_output.
function(step name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${name}:\n${out}${err}")
  if(NOT rc EQUAL 0)
    fail("${name} failed (${rc})")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

step("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(file include/procpool/pool.hpp include/procpool/wire/frame.hpp
             bin/procpool bin/procpool-fake-worker share/procpool/python/procpool_worker/__init__.py)
  if(NOT EXISTS ${prefix}/${file})
    fail("the install has no ${file}")
  endif()
endforeach()
file(GLOB_RECURSE archives ${prefix}/*/libprocpool.a)
file(GLOB_RECURSE configs ${prefix}/*/procpoolConfig.cmake ${prefix}/*/procpoolConfigVersion.cmake)
list(LENGTH configs config_count)
if(NOT archives OR NOT config_count EQUAL 2)
  fail("the install lacks libprocpool.a or the package config: ${archives} ${configs}")
endif()

# No package registry: the consumer must find this prefix's procpool, and no other.
step("configure consumer" ${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${consumer_build}
  -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
file(STRINGS ${consumer_build}/CMakeCache.txt found_dir REGEX "^procpool_DIR:")
if(NOT found_dir MATCHES "=${prefix}/")
  fail("the consumer found procpool elsewhere: ${found_dir}")
endif()
step("build consumer" ${CMAKE_COMMAND} --build ${consumer_build})

step("run consumer" ${consumer_build}/consumer ${prefix}/bin/procpool-fake-worker)
if(NOT step_output STREQUAL "ok\n")
  fail("the consumer printed '${step_output}', not 'ok'")
endif()

# The installed command finds the fake worker beside itself and the Python SDK installed
# with it, whatever the working directory.
execute_process(COMMAND ${CMAKE_COMMAND} -E env --unset=PROCPOOL_FAKE_WORKER --unset=PROCPOOL_PYTHON_DIR
    ${prefix}/bin/procpool roundtrip --worker fake --worker python --requests 3
  WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "installed procpool roundtrip:\n${out}${err}")
if(NOT rc EQUAL 0)
  fail("the installed procpool could not run its workers (${rc})")
endif()

file(REMOVE_RECURSE ${WORK_DIR})
