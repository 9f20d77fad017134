; Go definitions, references and imports for ctxpack.
; See README.md in this directory for the capture convention.

; ---------------------------------------------------------------- definitions

(function_declaration
  name: (identifier) @name) @definition.function

; Methods: the receiver's base type identifier qualifies the name
; (`func (s *Server) Start()` -> Server.Start, `func (b Box[T]) Get()` -> Box.Get).
(method_declaration
  receiver: (parameter_list
    (parameter_declaration
      type: [
        (type_identifier) @scope
        (pointer_type (type_identifier) @scope)
        (generic_type type: (type_identifier) @scope)
        (pointer_type (generic_type type: (type_identifier) @scope))
      ]))
  name: (field_identifier) @name) @definition.method

; Type declarations. Each type_spec is a definition; a declaration holding a
; single spec (`type Server struct {...}`) is captured as the definition node
; too, so (outer wins) the node starts at `type` and doc comments above attach.
(type_spec
  name: (type_identifier) @name
  type: (struct_type)) @definition.struct

(type_declaration
  .
  (type_spec
    name: (type_identifier) @name
    type: (struct_type))
  .) @definition.struct

(type_spec
  name: (type_identifier) @name
  type: (interface_type)) @definition.interface

(type_declaration
  .
  (type_spec
    name: (type_identifier) @name
    type: (interface_type))
  .) @definition.interface

(type_spec
  name: (type_identifier) @name
  type: [
    (type_identifier)
    (qualified_type)
    (generic_type)
    (pointer_type)
    (array_type)
    (slice_type)
    (map_type)
    (channel_type)
    (function_type)
    (negated_type)
    (parenthesized_type)
  ]) @definition.type

(type_declaration
  .
  (type_spec
    name: (type_identifier) @name
    type: [
      (type_identifier)
      (qualified_type)
      (generic_type)
      (pointer_type)
      (array_type)
      (slice_type)
      (map_type)
      (channel_type)
      (function_type)
      (negated_type)
      (parenthesized_type)
    ])
  .) @definition.type

(type_alias
  name: (type_identifier) @name) @definition.type

(type_declaration
  .
  (type_alias
    name: (type_identifier) @name)
  .) @definition.type

; Top-level constants and variables only (not locals inside functions).
(source_file
  (const_declaration
    (const_spec
      name: (identifier) @name) @definition.constant))

(source_file
  (var_declaration
    (var_spec
      name: (identifier) @name) @definition.variable))

(source_file
  (var_declaration
    (var_spec_list
      (var_spec
        name: (identifier) @name) @definition.variable)))

; ----------------------------------------------------------------- references

; Call targets: `helper()`, `pkg.Func()`, `obj.Method()`.
(call_expression
  function: (identifier) @reference)

(call_expression
  function: (selector_expression
    field: (field_identifier) @reference))

(call_expression
  function: (parenthesized_expression (identifier) @reference))

; Type uses (never the name being declared in a type_spec / type_alias).
(_ type: (type_identifier) @reference)
(_ result: (type_identifier) @reference)
(pointer_type (type_identifier) @reference)
(qualified_type name: (type_identifier) @reference)
(slice_type element: (type_identifier) @reference)
(array_type element: (type_identifier) @reference)
(map_type key: (type_identifier) @reference)
(map_type value: (type_identifier) @reference)
(channel_type value: (type_identifier) @reference)
(type_elem (type_identifier) @reference)
(type_constraint (type_identifier) @reference)

; -------------------------------------------------------------------- imports

(import_declaration
  (import_spec
    path: (_) @import.name)) @import

(import_declaration
  (import_spec_list
    (import_spec
      path: (_) @import.name))) @import
