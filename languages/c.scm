; C definitions, references and imports for ctxpack.
; See README.md in this directory for the capture convention.

; ---------------------------------------------------------------- definitions

; Function definitions; the name sits at the end of a declarator chain:
; `int f(void)`, `static int *f(void)`, `char **f(void)`.
; Prototypes (`int f(void);`) are declarations, not definitions.
(function_definition
  declarator: (function_declarator
    declarator: (identifier) @name)) @definition.function

(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: (identifier) @name))) @definition.function

(function_definition
  declarator: (pointer_declarator
    declarator: (pointer_declarator
      declarator: (function_declarator
        declarator: (identifier) @name)))) @definition.function

; struct / union / enum with a body (a bare `struct X *p` is a use).
(struct_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @definition.struct

(union_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @definition.union

(enum_specifier
  name: (type_identifier) @name
  body: (enumerator_list)) @definition.enum

; typedefs: `typedef T name;`, `typedef T *name;`, `typedef int name[4];`,
; `typedef int (*name)(int);`
(type_definition
  declarator: (type_identifier) @name) @definition.type

(type_definition
  declarator: (pointer_declarator
    declarator: (type_identifier) @name)) @definition.type

(type_definition
  declarator: (array_declarator
    declarator: (type_identifier) @name)) @definition.type

(type_definition
  declarator: (function_declarator
    declarator: (parenthesized_declarator
      (pointer_declarator
        declarator: (type_identifier) @name)))) @definition.type

; Macros, object-like and function-like.
(preproc_def
  name: (identifier) @name) @definition.macro

(preproc_function_def
  name: (identifier) @name) @definition.macro

; ----------------------------------------------------------------- references

(call_expression
  function: (identifier) @reference)

(call_expression
  function: (field_expression
    field: (field_identifier) @reference))

(call_expression
  function: (parenthesized_expression (identifier) @reference))

; Type uses: declarations, parameters, fields, casts, sizeof.
(_ type: (type_identifier) @reference)

(struct_specifier
  name: (type_identifier) @reference
  !body)

(union_specifier
  name: (type_identifier) @reference
  !body)

(enum_specifier
  name: (type_identifier) @reference
  !body)

; -------------------------------------------------------------------- imports

; `#include "x.h"` -> x.h, `#include <x.h>` -> <x.h> (parse/the checker strip the brackets)
(preproc_include
  path: (string_literal (string_content) @import.name)) @import

(preproc_include
  path: (system_lib_string) @import.name) @import
