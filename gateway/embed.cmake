# Turns the file IN into a C source OUT defining NAME[] / NAME_len (NAME
# defaults to gw_demo_page), so a node needs no files at run time.
if(NOT DEFINED NAME)
  set(NAME gw_demo_page)
endif()
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
get_filename_component(src ${IN} NAME)
file(WRITE ${OUT} "/* Generated from ${src} by embed.cmake. Do not edit. */\n"
  "#include <stddef.h>\n"
  "extern const unsigned char ${NAME}[];\n"
  "extern const size_t ${NAME}_len;\n"
  "const unsigned char ${NAME}[] = {${bytes}0x00};\n"
  "const size_t ${NAME}_len = ${len};\n")
