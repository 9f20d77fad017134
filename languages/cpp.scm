; C++ definitions, references and imports for ctxpack.
; See README.md in this directory for the capture convention.

; ---------------------------------------------------------------- definitions

; Function definitions (free functions, in-class methods, out-of-class
; `void Foo::bar() {}` whose qualified name parse turns into Foo.bar,
; constructors, destructors, operators). The name ends a declarator chain:
; `f()`, `*f()`, `**f()`, `&f()`. Only definitions with a body count:
; prototypes, pure virtuals and `= default` / `= delete` are skipped.
(function_definition
  declarator: (function_declarator
    declarator: [
      (identifier)
      (field_identifier)
      (qualified_identifier)
      (destructor_name)
      (operator_name)
    ] @name)
  body: (_)) @definition.function

(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: [
        (identifier)
        (field_identifier)
        (qualified_identifier)
        (operator_name)
      ] @name))
  body: (_)) @definition.function

(function_definition
  declarator: (pointer_declarator
    declarator: (pointer_declarator
      declarator: (function_declarator
        declarator: [
          (identifier)
          (field_identifier)
          (qualified_identifier)
          (operator_name)
        ] @name)))
  body: (_)) @definition.function

(function_definition
  declarator: (reference_declarator
    (function_declarator
      declarator: [
        (identifier)
        (field_identifier)
        (qualified_identifier)
        (operator_name)
      ] @name))
  body: (_)) @definition.function

; Templates: the template_declaration is captured as the definition node too,
; so (outer wins) the chunk starts at the `template <...>` line.
(template_declaration
  (function_definition
    declarator: [
      (function_declarator
        declarator: [
          (identifier)
          (field_identifier)
          (qualified_identifier)
          (destructor_name)
          (operator_name)
        ] @name)
      (pointer_declarator
        declarator: (function_declarator
          declarator: [
            (identifier)
            (field_identifier)
            (qualified_identifier)
            (operator_name)
          ] @name))
      (reference_declarator
        (function_declarator
          declarator: [
            (identifier)
            (field_identifier)
            (qualified_identifier)
            (operator_name)
          ] @name))
    ]
    body: (_))) @definition.function

(template_declaration
  (class_specifier
    name: [
      (type_identifier) @name
      (template_type name: (type_identifier) @name)
    ]
    body: (field_declaration_list))) @definition.class

(template_declaration
  (struct_specifier
    name: [
      (type_identifier) @name
      (template_type name: (type_identifier) @name)
    ]
    body: (field_declaration_list))) @definition.struct

(template_declaration
  (union_specifier
    name: (type_identifier) @name
    body: (field_declaration_list))) @definition.union

(template_declaration
  (alias_declaration
    name: (type_identifier) @name)) @definition.type

; Classes, structs, unions, enums with a body (`class X;` / `struct X *p` are uses).
(class_specifier
  name: [
    (type_identifier) @name
    (template_type name: (type_identifier) @name)
    (qualified_identifier) @name
  ]
  body: (field_declaration_list)) @definition.class

(struct_specifier
  name: [
    (type_identifier) @name
    (template_type name: (type_identifier) @name)
    (qualified_identifier) @name
  ]
  body: (field_declaration_list)) @definition.struct

(union_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @definition.union

(enum_specifier
  name: (type_identifier) @name
  body: (enumerator_list)) @definition.enum

; Named namespaces (`namespace a::b {}` -> a.b); anonymous ones are not definitions.
(namespace_definition
  name: [
    (namespace_identifier)
    (nested_namespace_specifier)
  ] @name) @definition.namespace

; typedef / using aliases.
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

(alias_declaration
  name: (type_identifier) @name) @definition.type

; Macros.
(preproc_def
  name: (identifier) @name) @definition.macro

(preproc_function_def
  name: (identifier) @name) @definition.macro

; ----------------------------------------------------------------- references

; Calls: `f()`, `obj.m()` / `p->m()`, `ns::f()`, `a::b::f()`, `f<T>()`, `ns::f<T>()`.
(call_expression
  function: (identifier) @reference)

(call_expression
  function: (field_expression
    field: (field_identifier) @reference))

(call_expression
  function: (qualified_identifier
    name: [
      (identifier) @reference
      (template_function name: (identifier) @reference)
      (qualified_identifier
        name: [
          (identifier) @reference
          (template_function name: (identifier) @reference)
          (qualified_identifier
            name: [
              (identifier) @reference
              (template_function name: (identifier) @reference)
            ])
        ])
    ]))

(call_expression
  function: (template_function
    name: (identifier) @reference))

(call_expression
  function: (field_expression
    field: (template_method
      name: (field_identifier) @reference)))

; Type uses.
(_ type: (type_identifier) @reference)
(template_type name: (type_identifier) @reference)
(qualified_identifier name: (type_identifier) @reference)
(base_class_clause (type_identifier) @reference)
(base_class_clause (qualified_identifier name: (type_identifier) @reference))

(struct_specifier
  name: (type_identifier) @reference
  !body)

(class_specifier
  name: (type_identifier) @reference
  !body)

(enum_specifier
  name: (type_identifier) @reference
  !body)

; -------------------------------------------------------------------- imports

(preproc_include
  path: (string_literal (string_content) @import.name)) @import

(preproc_include
  path: (system_lib_string) @import.name) @import
