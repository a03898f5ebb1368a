# cmake -DAR=ar -DOUT=liblurk.a "-DIN=a.a|b.a|..." -P merge-archives.cmake
#
# Writes OUT, a static archive holding every member of the IN archives, with
# ar's MRI script (ADDLIB copies members as they are, so two members with the
# same name both stay; extracting them to files would lose one).
string(REPLACE "|" ";" IN "${IN}")
set(script "CREATE ${OUT}.tmp\n")
foreach(a ${IN})
  string(APPEND script "ADDLIB ${a}\n")
endforeach()
string(APPEND script "SAVE\nEND\n")
file(WRITE ${OUT}.mri "${script}")
file(REMOVE ${OUT}.tmp)
execute_process(COMMAND ${AR} -M INPUT_FILE ${OUT}.mri RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ar -M failed merging ${IN}")
endif()
file(RENAME ${OUT}.tmp ${OUT})
