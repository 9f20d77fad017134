; Definitions
(function_definition name: (identifier) @name) @definition.function
(decorated_definition definition: (function_definition name: (identifier) @name)) @definition.function
(class_definition name: (identifier) @name) @definition.class
(decorated_definition definition: (class_definition name: (identifier) @name)) @definition.class
(module (expression_statement (assignment left: (identifier) @name) @definition.constant))
(class_definition body: (block (expression_statement (assignment left: (identifier) @name) @definition.field)))

; References
(call function: (identifier) @reference)
(call function: (attribute attribute: (identifier) @reference))
(decorator (identifier) @reference)
(decorator (attribute attribute: (identifier) @reference))
(class_definition superclasses: (argument_list (identifier) @reference))
(class_definition superclasses: (argument_list (attribute attribute: (identifier) @reference)))
(type (identifier) @reference)
(type (attribute attribute: (identifier) @reference))

; Imports
(import_statement name: (dotted_name) @import.name) @import
(import_statement name: (aliased_import name: (dotted_name) @import.name)) @import
(import_from_statement module_name: (_) @import.name) @import
(import_from_statement module_name: (_) @import.name name: (dotted_name) @import.member) @import
(import_from_statement module_name: (_) @import.name name: (aliased_import name: (dotted_name) @import.member)) @import
(future_import_statement "__future__" @import.name) @import
