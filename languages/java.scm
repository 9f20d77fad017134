; Java definitions, references and imports for ctxpack.
; See README.md in this directory for the capture convention.

; ---------------------------------------------------------------- definitions

(class_declaration
  name: (identifier) @name) @definition.class

(record_declaration
  name: (identifier) @name) @definition.class

(interface_declaration
  name: (identifier) @name) @definition.interface

(annotation_type_declaration
  name: (identifier) @name) @definition.interface

(enum_declaration
  name: (identifier) @name) @definition.enum

(method_declaration
  name: (identifier) @name) @definition.method

; Constructors are methods named after their class (`Example.Example`).
(constructor_declaration
  name: (identifier) @name) @definition.method

; Compact record constructors: `record P(int x) { P { ... } }`.
(compact_constructor_declaration
  name: (identifier) @name) @definition.method

; Fields (one definition per declarator: `String a, b;`) and interface constants.
(field_declaration
  declarator: (variable_declarator
    name: (identifier) @name)) @definition.field

(constant_declaration
  declarator: (variable_declarator
    name: (identifier) @name)) @definition.field

; ----------------------------------------------------------------- references

(method_invocation
  name: (identifier) @reference)

(method_reference
  (identifier) @reference .)

; Every type use: declared names are `identifier`, so type_identifier is always a use.
(type_identifier) @reference

(marker_annotation
  name: (identifier) @reference)

(annotation
  name: (identifier) @reference)

; -------------------------------------------------------------------- imports

; `import a.b.C;`, `import static a.b.C.m;`, `import a.b.*;` (-> a.b)
(import_declaration
  [
    (scoped_identifier)
    (identifier)
  ] @import.name) @import
