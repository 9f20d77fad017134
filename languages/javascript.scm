; JavaScript (tree-sitter-javascript). Capture convention: languages/README.md
; Exported declarations are matched twice (bare and export-wrapped); the export_statement wins.

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

; ---------------------------------------------------------------- classes
(class_declaration
  name: (identifier) @name) @definition.class

(export_statement
  declaration: (class_declaration name: (identifier) @name)) @definition.class

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

; methods (class bodies and object literals), including constructor, getters, setters, generators
(method_definition
  name: (_) @name) @definition.method

; class fields: `static x = 1`, `#count = 0`
(field_definition
  property: (_) @name) @definition.field

; ---------------------------------------------------------------- module-level constants
; top-level `const X = <non-function value>`, also exported.
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

; ---------------------------------------------------------------- imports
(import_statement
  source: (string) @import.name) @import

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

(class_heritage (identifier) @reference)

(class_heritage
  (member_expression
    property: (property_identifier) @reference))

(decorator (identifier) @reference)

; JSX components (capitalised names only; <div> is an intrinsic element)
(jsx_opening_element
  name: (identifier) @reference
  (#match? @reference "^[A-Z]"))

(jsx_self_closing_element
  name: (identifier) @reference
  (#match? @reference "^[A-Z]"))

(jsx_opening_element
  name: (member_expression
    property: (property_identifier) @reference))

(jsx_self_closing_element
  name: (member_expression
    property: (property_identifier) @reference))
