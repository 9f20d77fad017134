; TypeScript (tree-sitter-typescript, language_typescript). Capture convention: languages/README.md
; Declarations are matched bare and wrapped in `export` / `declare` / `export declare`; the outermost
; node wins, so a chunk includes those keywords.

; ---------------------------------------------------------------- functions
(function_declaration
  name: (identifier) @name) @definition.function

(generator_function_declaration
  name: (identifier) @name) @definition.function

(export_statement
  declaration: [
    (function_declaration name: (identifier) @name)
    (generator_function_declaration name: (identifier) @name)
  ]) @definition.function

; declare function f(): void;  (overload signatures without `declare` are not captured)
(ambient_declaration
  (function_signature name: (identifier) @name)) @definition.function

(export_statement
  declaration: (ambient_declaration
    (function_signature name: (identifier) @name))) @definition.function

; const f = () => {} / let f = function () {} / var f = function* () {}
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function)])) @definition.function

(variable_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function)])) @definition.function

(export_statement
  declaration: [
    (lexical_declaration
      (variable_declarator
        name: (identifier) @name
        value: [(arrow_function) (function_expression) (generator_function)]))
    (variable_declaration
      (variable_declarator
        name: (identifier) @name
        value: [(arrow_function) (function_expression) (generator_function)]))
  ]) @definition.function

; CommonJS / prototype style: module.exports.handler = async function () {}; Foo.prototype.bar = () => {}
(expression_statement
  (assignment_expression
    left: (member_expression
      property: (property_identifier) @name)
    right: [(arrow_function) (function_expression) (generator_function)])) @definition.function

; Top level only: const Card = memo((props) => ...) / const handler = middy(async (event) => {...}):
; a call taking a function argument defines a function (its body is the interesting code). Not matched
; inside functions, where `const found = items.find((x) => ...)` is the common case.
(program
  [
    (lexical_declaration
      (variable_declarator
        name: (identifier) @name
        value: (call_expression
          arguments: (arguments [(arrow_function) (function_expression) (generator_function)]))))
    (variable_declaration
      (variable_declarator
        name: (identifier) @name
        value: (call_expression
          arguments: (arguments [(arrow_function) (function_expression) (generator_function)]))))
  ] @definition.function)

(program
  (export_statement
    declaration: [
      (lexical_declaration
        (variable_declarator
          name: (identifier) @name
          value: (call_expression
            arguments: (arguments [(arrow_function) (function_expression) (generator_function)]))))
      (variable_declaration
        (variable_declarator
          name: (identifier) @name
          value: (call_expression
            arguments: (arguments [(arrow_function) (function_expression) (generator_function)]))))
    ]) @definition.function)

; ---------------------------------------------------------------- classes, interfaces, types, enums
(class_declaration
  name: (_) @name) @definition.class

(abstract_class_declaration
  name: (_) @name) @definition.class

(export_statement
  declaration: [
    (class_declaration name: (_) @name)
    (abstract_class_declaration name: (_) @name)
  ]) @definition.class

(ambient_declaration
  (class_declaration name: (_) @name)) @definition.class

(export_statement
  declaration: (ambient_declaration
    (class_declaration name: (_) @name))) @definition.class

; const Foo = class { ... }
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: (class))) @definition.class

(export_statement
  declaration: (lexical_declaration
    (variable_declarator
      name: (identifier) @name
      value: (class)))) @definition.class

(interface_declaration
  name: (_) @name) @definition.interface

(export_statement
  declaration: (interface_declaration name: (_) @name)) @definition.interface

(type_alias_declaration
  name: (_) @name) @definition.type

(export_statement
  declaration: (type_alias_declaration name: (_) @name)) @definition.type

(enum_declaration
  name: (_) @name) @definition.enum

(export_statement
  declaration: (enum_declaration name: (_) @name)) @definition.enum

(ambient_declaration
  (enum_declaration name: (_) @name)) @definition.enum

; ---------------------------------------------------------------- namespaces / modules
; namespace A.B {} (internal_module), legacy `module M {}` -> namespace; `declare module "x" {}` -> module "x"
(internal_module
  name: (_) @name) @definition.namespace

(module
  name: [(identifier) (nested_identifier)] @name) @definition.namespace

(module
  name: (string (string_fragment) @name)) @definition.module

(export_statement
  declaration: [
    (internal_module name: (_) @name)
    (module name: [(identifier) (nested_identifier)] @name)
  ]) @definition.namespace

(ambient_declaration
  [
    (internal_module name: (_) @name)
    (module name: [(identifier) (nested_identifier)] @name)
  ]) @definition.namespace

(export_statement
  declaration: (ambient_declaration
    [
      (internal_module name: (_) @name)
      (module name: [(identifier) (nested_identifier)] @name)
    ])) @definition.namespace

(ambient_declaration
  (module
    name: (string (string_fragment) @name))) @definition.module

; ---------------------------------------------------------------- members
; methods (class bodies and object literals), including constructor, getters, setters.
; Body-less signatures (interface method_signature, abstract_method_signature) stay in their container's chunk.
(method_definition
  name: (_) @name) @definition.method

; class fields: `private readonly name: string`, `static count = 0`, `#secret = 1`
(public_field_definition
  name: (_) @name) @definition.field

; ---------------------------------------------------------------- module-level constants
; top-level (or namespace-level) `const X = <non-function value>`, also exported.
; A call value only counts when its callee is not the identifier `require` (`const x = require("y")`
; is an import; the callee is a call target, so it is captured as @reference for the predicate).
; For call values the definition node is the variable_declarator, so that the top-level wrapped-function
; patterns above (`const Card = memo(() => ...)`, whose node is the whole declaration) win over these.
(program
  (lexical_declaration
    kind: "const"
    (variable_declarator
      name: (identifier) @name
      value: [
        (number) (string) (template_string) (regex) (true) (false) (null) (undefined)
        (identifier) (array) (object) (binary_expression) (unary_expression)
        (new_expression) (member_expression) (subscript_expression)
        (ternary_expression) (parenthesized_expression) (await_expression)
        (as_expression) (satisfies_expression) (non_null_expression)
      ])) @definition.constant)

(program
  (lexical_declaration
    kind: "const"
    (variable_declarator
      name: (identifier) @name
      value: (call_expression
        function: [(member_expression) (call_expression) (subscript_expression) (parenthesized_expression)])) @definition.constant))

(program
  (lexical_declaration
    kind: "const"
    (variable_declarator
      name: (identifier) @name
      value: (call_expression
        function: (identifier) @reference
        (#not-eq? @reference "require"))) @definition.constant))

(program
  (export_statement
    declaration: (lexical_declaration
      kind: "const"
      (variable_declarator
        name: (identifier) @name
        value: [
          (number) (string) (template_string) (regex) (true) (false) (null) (undefined)
          (identifier) (array) (object) (binary_expression) (unary_expression)
          (new_expression) (member_expression) (subscript_expression)
          (ternary_expression) (parenthesized_expression) (await_expression)
          (as_expression) (satisfies_expression) (non_null_expression)
        ]))) @definition.constant)

(program
  (export_statement
    declaration: (lexical_declaration
      kind: "const"
      (variable_declarator
        name: (identifier) @name
        value: (call_expression
          function: [(member_expression) (call_expression) (subscript_expression) (parenthesized_expression)])) @definition.constant)))

(program
  (export_statement
    declaration: (lexical_declaration
      kind: "const"
      (variable_declarator
        name: (identifier) @name
        value: (call_expression
          function: (identifier) @reference
          (#not-eq? @reference "require"))) @definition.constant)))

(internal_module
  body: (statement_block
    (lexical_declaration
      kind: "const"
      (variable_declarator
        name: (identifier) @name
        value: [
          (number) (string) (template_string) (regex) (true) (false) (null) (undefined)
          (identifier) (array) (object) (binary_expression) (unary_expression)
          (new_expression) (member_expression) (subscript_expression)
          (ternary_expression) (parenthesized_expression) (await_expression)
          (as_expression) (satisfies_expression) (non_null_expression)
        ])) @definition.constant))

(internal_module
  body: (statement_block
    (lexical_declaration
      kind: "const"
      (variable_declarator
        name: (identifier) @name
        value: (call_expression
          function: [(member_expression) (call_expression) (subscript_expression) (parenthesized_expression)])) @definition.constant)))

(internal_module
  body: (statement_block
    (lexical_declaration
      kind: "const"
      (variable_declarator
        name: (identifier) @name
        value: (call_expression
          function: (identifier) @reference
          (#not-eq? @reference "require"))) @definition.constant)))

(internal_module
  body: (statement_block
    (export_statement
      declaration: (lexical_declaration
        kind: "const"
        (variable_declarator
          name: (identifier) @name
          value: [
            (number) (string) (template_string) (regex) (true) (false) (null) (undefined)
            (identifier) (array) (object) (binary_expression) (unary_expression)
            (new_expression) (member_expression) (subscript_expression)
            (ternary_expression) (parenthesized_expression) (await_expression)
            (as_expression) (satisfies_expression) (non_null_expression)
          ]))) @definition.constant))

(internal_module
  body: (statement_block
    (export_statement
      declaration: (lexical_declaration
        kind: "const"
        (variable_declarator
          name: (identifier) @name
          value: (call_expression
            function: [(member_expression) (call_expression) (subscript_expression) (parenthesized_expression)])) @definition.constant))))

(internal_module
  body: (statement_block
    (export_statement
      declaration: (lexical_declaration
        kind: "const"
        (variable_declarator
          name: (identifier) @name
          value: (call_expression
            function: (identifier) @reference
            (#not-eq? @reference "require"))) @definition.constant))))

(module
  body: (statement_block
    (lexical_declaration
      kind: "const"
      (variable_declarator
        name: (identifier) @name
        value: [
          (number) (string) (template_string) (regex) (true) (false) (null) (undefined)
          (identifier) (array) (object) (binary_expression) (unary_expression)
          (new_expression) (member_expression) (subscript_expression)
          (ternary_expression) (parenthesized_expression) (await_expression)
          (as_expression) (satisfies_expression) (non_null_expression)
        ])) @definition.constant))

(module
  body: (statement_block
    (lexical_declaration
      kind: "const"
      (variable_declarator
        name: (identifier) @name
        value: (call_expression
          function: [(member_expression) (call_expression) (subscript_expression) (parenthesized_expression)])) @definition.constant)))

(module
  body: (statement_block
    (lexical_declaration
      kind: "const"
      (variable_declarator
        name: (identifier) @name
        value: (call_expression
          function: (identifier) @reference
          (#not-eq? @reference "require"))) @definition.constant)))

(module
  body: (statement_block
    (export_statement
      declaration: (lexical_declaration
        kind: "const"
        (variable_declarator
          name: (identifier) @name
          value: [
            (number) (string) (template_string) (regex) (true) (false) (null) (undefined)
            (identifier) (array) (object) (binary_expression) (unary_expression)
            (new_expression) (member_expression) (subscript_expression)
            (ternary_expression) (parenthesized_expression) (await_expression)
            (as_expression) (satisfies_expression) (non_null_expression)
          ]))) @definition.constant))

(module
  body: (statement_block
    (export_statement
      declaration: (lexical_declaration
        kind: "const"
        (variable_declarator
          name: (identifier) @name
          value: (call_expression
            function: [(member_expression) (call_expression) (subscript_expression) (parenthesized_expression)])) @definition.constant))))

(module
  body: (statement_block
    (export_statement
      declaration: (lexical_declaration
        kind: "const"
        (variable_declarator
          name: (identifier) @name
          value: (call_expression
            function: (identifier) @reference
            (#not-eq? @reference "require"))) @definition.constant))))

; ---------------------------------------------------------------- imports
(import_statement
  source: (string) @import.name) @import

; import fs = require("fs")
(import_statement
  (import_require_clause
    source: (string) @import.name)) @import

; re-exports: export * from "x"; export { a } from "x"
(export_statement
  source: (string) @import.name) @import

; require("x") -- `require` is also a call target, hence @reference for the predicate
(call_expression
  function: (identifier) @reference
  arguments: (arguments . (string) @import.name)
  (#eq? @reference "require")) @import

; dynamic import("x")
(call_expression
  function: (import)
  arguments: (arguments . (string) @import.name)) @import

; ---------------------------------------------------------------- references
(call_expression
  function: (identifier) @reference)

(call_expression
  function: (member_expression
    property: (property_identifier) @reference))

(new_expression
  constructor: (identifier) @reference)

(new_expression
  constructor: (member_expression
    property: (property_identifier) @reference))

(extends_clause
  value: (identifier) @reference)

(extends_clause
  value: (member_expression
    property: (property_identifier) @reference))

(implements_clause (type_identifier) @reference)

(extends_type_clause
  type: (type_identifier) @reference)

(decorator (identifier) @reference)

; type uses (declaration names are type_identifiers too, so only type positions are listed)
(type_annotation (type_identifier) @reference)
(generic_type name: (type_identifier) @reference)
(nested_type_identifier name: (type_identifier) @reference)
(type_arguments (type_identifier) @reference)
(union_type (type_identifier) @reference)
(intersection_type (type_identifier) @reference)
(array_type (type_identifier) @reference)
(tuple_type (type_identifier) @reference)
(parenthesized_type (type_identifier) @reference)
(optional_type (type_identifier) @reference)
(rest_type (type_identifier) @reference)
(readonly_type (type_identifier) @reference)
(lookup_type (type_identifier) @reference)
(index_type_query (type_identifier) @reference)
(conditional_type (type_identifier) @reference)
(constraint (type_identifier) @reference)
(default_type (type_identifier) @reference)
(type_predicate type: (type_identifier) @reference)
(function_type return_type: (type_identifier) @reference)
(as_expression (type_identifier) @reference)
(satisfies_expression (type_identifier) @reference)
(type_alias_declaration value: (type_identifier) @reference)
(mapped_type_clause type: (type_identifier) @reference)

