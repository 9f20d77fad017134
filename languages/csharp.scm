; C# definitions, references and imports for ctxpack.
; See README.md in this directory for the capture convention.

; ---------------------------------------------------------------- definitions

; Block namespaces: `namespace A.B { ... }` -> A.B
(namespace_declaration
  name: [
    (identifier)
    (qualified_name)
  ] @name) @definition.namespace

; File-scoped namespaces (`namespace A.B;`): the grammar makes the following
; declarations siblings of the namespace node, so the definition node is the
; whole compilation unit; containment then qualifies everything in the file.
(compilation_unit
  (file_scoped_namespace_declaration
    name: [
      (identifier)
      (qualified_name)
    ] @name)) @definition.namespace

(class_declaration
  name: (identifier) @name) @definition.class

; Records (`record`, `record class`, `record struct`) are reported as classes.
(record_declaration
  name: (identifier) @name) @definition.class

(struct_declaration
  name: (identifier) @name) @definition.struct

(interface_declaration
  name: (identifier) @name) @definition.interface

(enum_declaration
  name: (identifier) @name) @definition.enum

(delegate_declaration
  name: (identifier) @name) @definition.type

(method_declaration
  name: (identifier) @name) @definition.method

; Constructors are methods named after their class (`Order.Order`).
(constructor_declaration
  name: (identifier) @name) @definition.method

; Local functions inside method bodies.
(local_function_statement
  name: (identifier) @name) @definition.function

(property_declaration
  name: (identifier) @name) @definition.property

; Fields (one definition per declarator: `int a, b;`) and event fields.
(field_declaration
  (variable_declaration
    (variable_declarator
      name: (identifier) @name))) @definition.field

(event_field_declaration
  (variable_declaration
    (variable_declarator
      name: (identifier) @name))) @definition.field

; ----------------------------------------------------------------- references

; Calls: `Helper()`, `obj.Method()`, `Method<T>()`, `obj.Method<T>()`.
(invocation_expression
  function: [
    (identifier) @reference
    (generic_name (identifier) @reference)
    (member_access_expression
      name: [
        (identifier) @reference
        (generic_name (identifier) @reference)
      ])
  ])

; Type uses (C# spells type names as plain identifiers).
(_ type: (identifier) @reference)
(_ returns: (identifier) @reference)
(_ type: (qualified_name name: (identifier) @reference))
(_ returns: (qualified_name name: (identifier) @reference))
(generic_name (identifier) @reference)
(type_argument_list (identifier) @reference)
(base_list (identifier) @reference)
(base_list (qualified_name name: (identifier) @reference))
(type_parameter_constraint type: (identifier) @reference)

(attribute
  name: (identifier) @reference)

; -------------------------------------------------------------------- imports

; `using A.B;`, `using static A.B;`, `global using A;`, `using X = A.B;` (-> A.B).
; The anchor picks the last child, i.e. the target rather than an alias name.
(using_directive
  [
    (identifier)
    (qualified_name)
  ] @import.name .) @import
