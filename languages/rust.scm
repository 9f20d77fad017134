; Rust definitions, references and imports for ctxpack.
; See README.md in this directory for the capture convention.

; ---------------------------------------------------------------- definitions

; Free functions; inside impl/trait blocks parse reports them as methods.
(function_item
  name: (identifier) @name) @definition.function

; Trait method signatures without a body (`fn get(&self) -> T;`).
(function_signature_item
  name: (identifier) @name) @definition.function

(struct_item
  name: (type_identifier) @name) @definition.struct

(enum_item
  name: (type_identifier) @name) @definition.enum

(union_item
  name: (type_identifier) @name) @definition.union

(trait_item
  name: (type_identifier) @name) @definition.trait

; impl blocks are named after the implementing type's base identifier:
; `impl Display for Foo` -> Foo, `impl<T> Cache<T>` -> Cache, `impl a::B` -> B,
; `impl Trait for f64` -> f64, `impl<'a> T for &'a Foo` -> Foo. Impls for tuples,
; slices, arrays, `dyn Trait` are not captured (their items stay plain functions).
(impl_item
  type: [
    (type_identifier) @name
    (generic_type type: (type_identifier) @name)
    (scoped_type_identifier name: (type_identifier) @name)
    (generic_type type: (scoped_type_identifier name: (type_identifier) @name))
    (primitive_type) @name
    (reference_type type: (type_identifier) @name)
    (reference_type type: (generic_type type: (type_identifier) @name))
  ]) @definition.impl

; Inline modules only; `mod x;` is an import (below).
(mod_item
  name: (identifier) @name
  body: (declaration_list)) @definition.module

(const_item
  name: (identifier) @name) @definition.constant

(static_item
  name: (identifier) @name) @definition.constant

(type_item
  name: (type_identifier) @name) @definition.type

(macro_definition
  name: (identifier) @name) @definition.macro

; ----------------------------------------------------------------- references

; Calls: `helper()`, `obj.method()`, `Type::func()` / `module::func()`, `f::<T>()`.
(call_expression
  function: (identifier) @reference)

(call_expression
  function: (field_expression
    field: (field_identifier) @reference))

(call_expression
  function: (scoped_identifier
    path: (identifier)? @reference
    name: (identifier) @reference))

(call_expression
  function: (generic_function
    function: [
      (identifier) @reference
      (scoped_identifier name: (identifier) @reference)
      (field_expression field: (field_identifier) @reference)
    ]))

(macro_invocation
  macro: (identifier) @reference)

; Type uses (never the name being declared).
(_ type: (type_identifier) @reference)
(_ return_type: (type_identifier) @reference)
(_ trait: (type_identifier) @reference)
(type_arguments (type_identifier) @reference)
(trait_bounds (type_identifier) @reference)
(scoped_type_identifier name: (type_identifier) @reference)
(struct_expression name: (type_identifier) @reference)
(struct_expression name: (scoped_type_identifier name: (type_identifier) @reference))

; -------------------------------------------------------------------- imports

; `use a::b::C;`, `use a::b as c;`, `use a::{b, c};` (-> a), `use a::*;` (-> a)
(use_declaration
  argument: [
    (identifier)
    (scoped_identifier)
    (crate)
    (self)
    (super)
  ] @import.name) @import

(use_declaration
  argument: (use_as_clause
    path: (_) @import.name)) @import

(use_declaration
  argument: (scoped_use_list
    path: (_) @import.name)) @import

(use_declaration
  argument: (use_wildcard
    [
      (identifier)
      (scoped_identifier)
      (crate)
      (self)
      (super)
    ] @import.name)) @import

(use_declaration
  argument: (use_list
    [
      (identifier)
      (scoped_identifier)
    ] @import.name)) @import

; `mod config;` (a module in another file) is an import of that module.
(mod_item
  name: (identifier) @import.name
  !body) @import

(extern_crate_declaration
  name: (identifier) @import.name) @import
